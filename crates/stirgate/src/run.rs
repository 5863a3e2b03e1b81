//! `stirgate run` and `stirgate check-config`.

use crate::cli::RunArgs;

/// Runs the B2BUA until a signal; returns the exit status.
pub fn main(args: RunArgs) -> u8 {
    let _ = args;
    0
}

/// Validates a config and prints it; returns 0 when valid and 2 otherwise.
pub fn check_config(args: RunArgs) -> u8 {
    let _ = args;
    0
}
