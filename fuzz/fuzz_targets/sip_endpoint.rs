//! libFuzzer entry for [`stirgate_fuzz::sip_endpoint`]: `cargo +nightly fuzz run sip_endpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stirgate_fuzz::sip_endpoint(data));
