//! Fuzz target `layout_history`: see `ringkv_decoder_checks::layouts::layout_history` for the input
//! format and what is asserted.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ringkv_decoder_checks::layouts::layout_history(data);
});
