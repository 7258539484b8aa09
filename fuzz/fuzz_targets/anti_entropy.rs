//! Fuzz target `anti_entropy`: see `ringkv_decoder_checks::anti_entropy::anti_entropy` for the input
//! format and what is asserted.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ringkv_decoder_checks::anti_entropy::anti_entropy(data);
});
