//! Fuzz target: the JSON-RPC request parser and the batch splitter /
//! reassembler, with every invariant of
//! `meridian_data_plane::proxy::fuzz::check_request` asserted on each input.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    meridian_data_plane::proxy::fuzz::check_request(data);
});
