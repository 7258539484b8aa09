//! Fuzz target `storage_record`: see `ringkv_decoder_checks::stored::storage_record` for the input
//! format and what is asserted.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ringkv_decoder_checks::stored::storage_record(data);
});
