//! Fuzzes a bearer token: parsed and verified with a fixed key set, or a JSON Web Key Set parsed.
//! The checks are in `beacon_server::fuzzing::token`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| beacon_server::fuzzing::token(data));
