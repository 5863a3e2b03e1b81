//! libFuzzer entry for [`stirgate_fuzz::stream_framing`]: `cargo +nightly fuzz run stream_framing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stirgate_fuzz::stream_framing(data));
