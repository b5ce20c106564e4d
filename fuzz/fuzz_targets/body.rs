//! Fuzzes a create or update body: validated for both views under the create, replace and update rules.
//! The checks are in `beacon_server::fuzzing::body`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| beacon_server::fuzzing::body(data));
