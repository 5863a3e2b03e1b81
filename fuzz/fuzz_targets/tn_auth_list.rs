//! libFuzzer entry for [`stirgate_fuzz::tn_auth_list`]: `cargo +nightly fuzz run tn_auth_list`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stirgate_fuzz::tn_auth_list(data));
