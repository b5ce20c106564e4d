//! Fuzzes a whole query string of a collection request: parsed for every kind of target, bound to both views and compiled to SQL for both dialects.
//! The checks are in `beacon_server::fuzzing::query`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| beacon_server::fuzzing::query(data));
