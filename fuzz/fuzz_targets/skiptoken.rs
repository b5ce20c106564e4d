//! Fuzzes a `$skiptoken`: decoded with a fixed key, as sent or with a fuzzed payload signed first.
//! The checks are in `beacon_server::fuzzing::skiptoken`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| beacon_server::fuzzing::skiptoken(data));
