//! libFuzzer entry for [`stirgate_fuzz::certificate`]: `cargo +nightly fuzz run certificate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stirgate_fuzz::certificate(data));
