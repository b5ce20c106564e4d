//! Fuzzes an `$orderby` option: parsed, bound to both views and compiled to SQL for both dialects.
//! The checks are in `beacon_server::fuzzing::orderby`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| beacon_server::fuzzing::orderby(data));
