//! `stirgate verify` and `stirgate sign` (issue 3 fills these in).

use crate::cli::{SignArgs, VerifyArgs};

/// Runs `stirgate verify`; returns the process exit status of the contract.
pub fn verify(args: VerifyArgs) -> u8 {
    let _ = args;
    eprintln!("stirgate verify: not implemented yet");
    2
}

/// Runs `stirgate sign`; returns the process exit status of the contract.
pub fn sign(args: SignArgs) -> u8 {
    let _ = args;
    eprintln!("stirgate sign: not implemented yet");
    2
}
