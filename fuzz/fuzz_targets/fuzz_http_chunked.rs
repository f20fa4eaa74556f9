//! libFuzzer target: arbitrary bytes as a chunked HTTP/1 body (after a
//! control byte), decoded whole, byte by byte and in pieces, against a
//! reference decoder, and re-chunked. The harness lives in
//! `baton_worker::http::fuzzing`, shared with the smoke runner and the
//! worker's tests.
#![no_main]

use baton_worker::http::fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::chunked(data);
});
