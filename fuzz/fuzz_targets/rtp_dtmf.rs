//! libFuzzer entry for [`stirgate_fuzz::rtp_dtmf`]: `cargo +nightly fuzz run rtp_dtmf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stirgate_fuzz::rtp_dtmf(data));
