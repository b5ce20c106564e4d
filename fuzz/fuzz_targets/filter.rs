//! Fuzzes a `$filter` expression: parsed, printed and parsed again, bound to both views and compiled to SQL for both dialects.
//! The checks are in `beacon_server::fuzzing::filter`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| beacon_server::fuzzing::filter(data));
