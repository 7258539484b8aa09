//! Fuzz target `http_path`: see `ringkv_decoder_checks::client::http_path` for the input
//! format and what is asserted.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ringkv_decoder_checks::client::http_path(data);
});
