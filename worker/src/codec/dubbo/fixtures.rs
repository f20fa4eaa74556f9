//! Apache Dubbo 2 byte fixtures, for this codec's tests, the framework tests
//! and the fuzz seed corpus (through `Protocol::fixtures` and
//! [`crate::codec::fixtures::all`]). The rules for a fixture (a capture
//! from another implementation, cited, or built by hand from the
//! documented layout, and saying so) are in [`crate::codec::fixtures`].

use hex_literal::hex;

/// A Dubbo two-way request (flag 0xc2: request, two-way, hessian2), id 76:
/// dubbo version `2.6.2`, service `com.raycloud.notify.api.service.NotifyJobRequest`,
/// version `2.0.1-vpc-test`, method `stopNotifyJob`, then arguments and
/// attachments.
///
/// Source: <https://github.com/mosn/mosn>, file
/// `pkg/protocol/xprotocol/dubbo/decoder_test.go`, `benchmarkData`, commit
/// 707d635b77329221203f42b6016cce22eda79141.
pub const DUBBO_REQUEST_NOTIFY_JOB: [u8; 523] = hex!(
    "da bb c2 00 00 00 00 00 00 00 00 4c 00 00 01 fb 05 32 2e 36 2e 32 30 30 63 6f 6d 2e 72 61 79 63"
    "6c 6f 75 64 2e 6e 6f 74 69 66 79 2e 61 70 69 2e 73 65 72 76 69 63 65 2e 4e 6f 74 69 66 79 4a 6f"
    "62 52 65 71 75 65 73 74 0e 32 2e 30 2e 31 2d 76 70 63 2d 74 65 73 74 0d 73 74 6f 70 4e 6f 74 69"
    "66 79 4a 6f 62 30 2e 4c 63 6f 6d 2f 72 61 79 63 6c 6f 75 64 2f 6e 6f 74 69 66 79 2f 61 70 69 2f"
    "64 6f 6d 61 69 6e 2f 53 74 6f 70 4e 6f 74 69 66 79 4a 6f 62 3b 43 30 2c 63 6f 6d 2e 72 61 79 63"
    "6c 6f 75 64 2e 6e 6f 74 69 66 79 2e 61 70 69 2e 64 6f 6d 61 69 6e 2e 53 74 6f 70 4e 6f 74 69 66"
    "79 4a 6f 62 98 06 73 74 61 74 75 73 06 74 6f 70 69 63 73 04 6e 69 63 6b 04 74 79 70 65 0a 73 65"
    "73 73 69 6f 6e 4b 65 79 06 61 70 70 4b 65 79 05 61 70 70 49 64 08 74 61 6f 62 61 6f 49 64 60 01"
    "31 01 31 01 31 01 31 01 31 01 31 91 e1 48 05 61 2e 73 2e 75 0a 2f 61 75 74 68 2f 74 65 73 74 05"
    "61 2e 73 2e 74 10 35 33 35 36 32 35 38 38 39 38 37 37 31 33 31 34 05 61 2e 73 2e 64 10 6b 65 66"
    "75 2e 6b 75 61 69 6d 61 69 2e 63 6f 6d 04 70 61 74 68 30 30 63 6f 6d 2e 72 61 79 63 6c 6f 75 64"
    "2e 6e 6f 74 69 66 79 2e 61 70 69 2e 73 65 72 76 69 63 65 2e 4e 6f 74 69 66 79 4a 6f 62 52 65 71"
    "75 65 73 74 10 64 75 62 62 6f 41 70 70 6c 69 63 61 74 69 6f 6e 14 63 6f 6d 2d 72 61 79 63 6c 6f"
    "75 64 2d 61 64 6d 69 6e 2d 78 09 69 6e 74 65 72 66 61 63 65 30 30 63 6f 6d 2e 72 61 79 63 6c 6f"
    "75 64 2e 6e 6f 74 69 66 79 2e 61 70 69 2e 73 65 72 76 69 63 65 2e 4e 6f 74 69 66 79 4a 6f 62 52"
    "65 71 75 65 73 74 07 76 65 72 73 69 6f 6e 0e 32 2e 30 2e 31 2d 76 70 63 2d 74 65 73 74 07 74 69"
    "6d 65 6f 75 74 04 35 30 30 30 5a"
);

/// A Dubbo two-way request, id 10: dubbo version `2.0.2`, service
/// `com.dmall.dsf.zone.proxy.service.ProxyInterface`, version `0.0.0`,
/// method `unitTestByUnit`, with a large object argument.
///
/// Source: <https://github.com/mosn/mosn>, file
/// `pkg/protocol/xprotocol/dubbo/decoder_test.go`, `complexData`, commit
/// 707d635b77329221203f42b6016cce22eda79141.
pub const DUBBO_REQUEST_COMPLEX: [u8; 1109] = hex!(
    "da bb c2 00 00 00 00 00 00 00 00 0a 00 00 04 45 05 32 2e 30 2e 32 30 2f 63 6f 6d 2e 64 6d 61 6c"
    "6c 2e 64 73 66 2e 7a 6f 6e 65 2e 70 72 6f 78 79 2e 73 65 72 76 69 63 65 2e 50 72 6f 78 79 49 6e"
    "74 65 72 66 61 63 65 05 30 2e 30 2e 30 0e 75 6e 69 74 54 65 73 74 42 79 55 6e 69 74 30 5f 4c 6a"
    "61 76 61 2f 6c 61 6e 67 2f 53 74 72 69 6e 67 3b 4c 63 6f 6d 2f 64 6d 61 6c 6c 2f 64 73 66 2f 7a"
    "6f 6e 65 2f 70 72 6f 78 79 2f 65 6e 74 69 74 79 2f 53 69 6d 70 6c 65 45 6e 74 69 74 79 3b 4c 6a"
    "61 76 61 2f 75 74 69 6c 2f 4c 69 73 74 3b 4c 6a 61 76 61 2f 75 74 69 6c 2f 4d 61 70 3b 01 30 43"
    "30 2c 63 6f 6d 2e 64 6d 61 6c 6c 2e 64 73 66 2e 7a 6f 6e 65 2e 70 72 6f 78 79 2e 65 6e 74 69 74"
    "79 2e 53 69 6d 70 6c 65 45 6e 74 69 74 79 9c 0d 72 65 6d 6f 74 65 52 65 73 4c 69 73 74 0c 72 65"
    "6d 6f 74 65 52 65 73 4d 61 70 0b 69 6e 6e 65 72 45 6e 74 69 74 79 0d 72 65 71 75 65 73 74 4d 65"
    "74 68 6f 64 09 6c 6f 63 61 6c 48 6f 73 74 09 6c 6f 63 61 6c 55 6e 69 74 0c 62 61 73 65 4f 62 6a"
    "65 63 74 49 64 0e 62 61 73 65 4f 62 6a 65 63 74 4e 61 6d 65 09 73 6c 65 65 70 54 69 6d 65 08 76"
    "65 6e 64 65 72 49 64 04 70 61 72 32 04 70 61 72 31 60 4e 4e 43 30 2b 63 6f 6d 2e 64 6d 61 6c 6c"
    "2e 64 73 66 2e 7a 6f 6e 65 2e 70 72 6f 78 79 2e 65 6e 74 69 74 79 2e 49 6e 6e 65 72 45 6e 74 69"
    "74 79 99 10 73 69 6d 70 6c 65 45 6e 74 69 74 79 4c 69 73 74 04 6c 69 73 74 0d 72 65 71 75 65 73"
    "74 4d 65 74 68 6f 64 09 6c 6f 63 61 6c 48 6f 73 74 09 6c 6f 63 61 6c 55 6e 69 74 0c 62 61 73 65"
    "4f 62 6a 65 63 74 49 64 0e 62 61 73 65 4f 62 6a 65 63 74 4e 61 6d 65 08 76 65 6e 64 65 72 49 64"
    "04 75 6e 69 74 61 4e 4e 4e 4e 4e 90 0e 42 61 73 65 4f 62 6a 65 63 74 4e 61 6d 65 4e 90 4e 09 31"
    "32 37 2e 30 2e 30 2e 31 04 47 7a 30 31 90 4e 90 4e 4e 4e 70 13 6a 61 76 61 2e 75 74 69 6c 2e 41"
    "72 72 61 79 4c 69 73 74 48 02 78 78 4d 30 26 6a 61 76 61 2e 75 74 69 6c 2e 63 6f 6e 63 75 72 72"
    "65 6e 74 2e 43 6f 6e 63 75 72 72 65 6e 74 48 61 73 68 4d 61 70 02 78 78 02 79 79 5a 02 79 79 4d"
    "91 02 79 79 02 79 79 5a 5a 48 10 72 65 6d 6f 74 65 2e 66 6c 61 67 5f 63 6f 64 65 4e 0d 63 6f 6e"
    "73 75 6d 65 72 5f 75 6e 69 74 04 67 7a 30 31 06 73 65 63 72 65 74 13 61 77 71 33 34 33 35 35 65"
    "67 64 74 36 75 37 69 6b 75 74 09 69 6e 74 65 72 66 61 63 65 30 2f 63 6f 6d 2e 64 6d 61 6c 6c 2e"
    "64 73 66 2e 7a 6f 6e 65 2e 70 72 6f 78 79 2e 73 65 72 76 69 63 65 2e 50 72 6f 78 79 49 6e 74 65"
    "72 66 61 63 65 0f 72 65 6d 6f 74 65 2e 70 72 6f 5f 63 6f 64 65 07 70 72 6f 43 6f 64 65 12 72 65"
    "6d 6f 74 65 2e 72 65 67 69 6f 6e 5f 63 6f 64 65 4e 07 76 65 72 73 69 6f 6e 05 30 2e 30 2e 30 07"
    "74 69 6d 65 6f 75 74 04 33 30 30 30 0b 72 65 6d 6f 74 65 2e 7a 6f 6e 65 04 47 7a 30 31 04 70 61"
    "74 68 30 2f 63 6f 6d 2e 64 6d 61 6c 6c 2e 64 73 66 2e 7a 6f 6e 65 2e 70 72 6f 78 79 2e 73 65 72"
    "76 69 63 65 2e 50 72 6f 78 79 49 6e 74 65 72 66 61 63 65 04 75 6e 69 74 04 67 7a 30 31 0f 72 65"
    "6d 6f 74 65 2e 61 70 70 5f 63 6f 64 65 07 61 70 70 43 6f 64 65 12 72 65 6d 6f 74 65 2e 61 70 70"
    "6c 69 63 61 74 69 6f 6e 14 7a 6f 6e 65 2d 63 6f 6e 66 69 67 2d 63 6f 6e 73 75 6d 65 72 0b 61 70"
    "70 6c 69 63 61 74 69 6f 6e 14 7a 6f 6e 65 2d 63 6f 6e 66 69 67 2d 63 6f 6e 73 75 6d 65 72 0a 64"
    "6d 61 6c 6c 5f 7a 6f 6e 65 0b 2e 74 6f 53 74 72 69 6e 67 31 31 0d 70 72 6f 76 69 64 65 72 5f 75"
    "6e 69 74 04 67 7a 30 31 0e 72 65 6d 6f 74 65 2e 61 64 64 72 65 73 73 0c 31 30 2e 31 32 2e 32 31"
    "34 2e 36 33 0c 64 6d 61 6c 6c 5f 6c 6f 63 61 6c 65 02 65 6e 5a"
);

/// A Dubbo response (flag 0x02: hessian2), status OK (20), id 0, body
/// `0x91` (RESPONSE_VALUE) `0xc8 0x7b` (int 123).
///
/// Source: <https://github.com/Corey600/zoodubbo>, file `test/test.js`,
/// "decode response", commit c5700687898c82c18d1326ecaccc33fa20269b72.
pub const DUBBO_RESPONSE_INT: [u8; 19] =
    hex!("da bb 02 14 00 00 00 00 00 00 00 00 00 00 00 03 91 c8 7b");

/// A Dubbo heartbeat request: flag 0xe2 (request, two-way, event,
/// hessian2), id 5, body `N` (hessian2 null: Dubbo's HEARTBEAT_EVENT is
/// null). Hand-built from the header layout in Dubbo's `ExchangeCodec`
/// (as documented at <https://dubbo.apache.org>, "Dubbo protocol").
pub const DUBBO_HEARTBEAT_REQUEST: [u8; 17] =
    hex!("da bb e2 00 00 00 00 00 00 00 00 05 00 00 00 01 4e");

/// The heartbeat response Dubbo's `HeartbeatHandler` sends for
/// [`DUBBO_HEARTBEAT_REQUEST`]: flag 0x22 (event, hessian2), status OK, same
/// id, null body. Hand-built like the request.
pub const DUBBO_HEARTBEAT_RESPONSE: [u8; 17] =
    hex!("da bb 22 14 00 00 00 00 00 00 00 05 00 00 00 01 4e");

/// Every fixture of this protocol, by the name its fuzz seed files take.
pub const ALL: &[(&str, &[u8])] = &[
    ("dubbo_request_notify_job", &DUBBO_REQUEST_NOTIFY_JOB),
    ("dubbo_request_complex", &DUBBO_REQUEST_COMPLEX),
    ("dubbo_response_int", &DUBBO_RESPONSE_INT),
    ("dubbo_heartbeat_request", &DUBBO_HEARTBEAT_REQUEST),
    ("dubbo_heartbeat_response", &DUBBO_HEARTBEAT_RESPONSE),
];
