//! sipp helpers.
