//! libFuzzer target: arbitrary bytes, in arbitrary chunks, through the
//! tars decoder until it errors or the input ends. The harness (byte 0:
//! frame-size limit and chunk seed) and the contract it checks live in
//! `baton_worker::codec::fuzzing`, shared with the smoke runner and tests.
#![no_main]

use baton_worker::codec::{Protocol, fuzzing};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::decode_stream(Protocol::Tars, data);
});
