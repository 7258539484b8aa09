//! Fuzz target `rpc_frame`: see `ringkv_decoder_checks::rpc::rpc_frame` for the input
//! format and what is asserted.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ringkv_decoder_checks::rpc::rpc_frame(data);
});
