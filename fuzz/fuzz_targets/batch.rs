//! Fuzzes a JSON `$batch` body: the envelope parsed and checked, and each inner path and query parsed.
//! The checks are in `beacon_server::fuzzing::batch`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| beacon_server::fuzzing::batch(data));
