//! Fuzz target `gossip`: see `ringkv_decoder_checks::gossip::gossip` for the input
//! format and what is asserted.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ringkv_decoder_checks::gossip::gossip(data);
});
