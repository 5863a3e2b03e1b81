//! libFuzzer entry for [`stirgate_fuzz::identity_passport`]: `cargo +nightly fuzz run identity_passport`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stirgate_fuzz::identity_passport(data));
