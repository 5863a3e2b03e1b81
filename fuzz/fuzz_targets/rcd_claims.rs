//! libFuzzer entry for [`stirgate_fuzz::rcd_claims`]: `cargo +nightly fuzz run rcd_claims`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stirgate_fuzz::rcd_claims(data));
