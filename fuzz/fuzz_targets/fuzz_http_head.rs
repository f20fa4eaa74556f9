//! libFuzzer target: arbitrary bytes as an HTTP/1 request or response
//! head. The harness (byte 0: limits, request or response, how to split)
//! and the contract it checks live in `baton_worker::http::fuzzing`,
//! shared with the smoke runner and the worker's tests.
#![no_main]

use baton_worker::http::fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::head(data);
});
