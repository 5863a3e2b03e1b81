//! net helpers.
