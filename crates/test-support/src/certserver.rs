//! certserver helpers.
