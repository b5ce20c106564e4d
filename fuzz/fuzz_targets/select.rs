//! Fuzzes a `$select` option: parsed and bound to both views, alone and after a grouping `$apply`.
//! The checks are in `beacon_server::fuzzing::select`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| beacon_server::fuzzing::select(data));
