//! libFuzzer entry for [`stirgate_fuzz::sdp`]: `cargo +nightly fuzz run sdp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stirgate_fuzz::sdp(data));
