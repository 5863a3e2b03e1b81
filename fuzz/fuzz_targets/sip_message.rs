//! libFuzzer entry for [`stirgate_fuzz::sip_message`]: `cargo +nightly fuzz run sip_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stirgate_fuzz::sip_message(data));
