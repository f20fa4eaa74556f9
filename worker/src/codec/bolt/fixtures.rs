//! SOFA Bolt v1 byte fixtures, for this codec's tests, the framework tests
//! and the fuzz seed corpus (through `Protocol::fixtures` and
//! [`crate::codec::fixtures::all`]). The rules for a fixture (a capture
//! from another implementation, cited, or built by hand from the
//! documented layout, and saying so) are in [`crate::codec::fixtures`].

use hex_literal::hex;

/// A Bolt v1 request from SOFARPC (codec 11 = protobuf), id 109, timeout
/// 100 ms, class `com.alipay.sofa.rpc.core.request.SofaRequest`, a header
/// map with `service` and `sofa_head_target_service` =
/// `com.alipay.rpc.common.service.facade.pb.SampleServicePb:1.0`,
/// `sofa_head_method_name` = `hello`, and empty-valued entries.
///
/// Source: <https://github.com/sofastack/sofa-bolt-python>, file
/// `tests/test_bolt_package.py`, `test_from_stream` (second `bs`), commit
/// 1b5e24f64e0fda069f37ca245bf66013883fbb78.
pub const BOLT_REQUEST_PROTOBUF: [u8; 811] = hex!(
    "01 01 00 01 01 00 00 00 6d 0b 00 00 00 64 00 2c 02 e6 00 00 00 03 63 6f 6d 2e 61 6c 69 70 61 79"
    "2e 73 6f 66 61 2e 72 70 63 2e 63 6f 72 65 2e 72 65 71 75 65 73 74 2e 53 6f 66 61 52 65 71 75 65"
    "73 74 00 00 00 18 73 6f 66 61 5f 68 65 61 64 5f 74 61 72 67 65 74 5f 73 65 72 76 69 63 65 00 00"
    "00 3b 63 6f 6d 2e 61 6c 69 70 61 79 2e 72 70 63 2e 63 6f 6d 6d 6f 6e 2e 73 65 72 76 69 63 65 2e"
    "66 61 63 61 64 65 2e 70 62 2e 53 61 6d 70 6c 65 53 65 72 76 69 63 65 50 62 3a 31 2e 30 00 00 00"
    "1b 72 70 63 5f 74 72 61 63 65 5f 63 6f 6e 74 65 78 74 2e 73 6f 66 61 52 70 63 49 64 00 00 00 01"
    "30 00 00 00 1f 72 70 63 5f 74 72 61 63 65 5f 63 6f 6e 74 65 78 74 2e 7a 70 72 6f 78 79 54 69 6d"
    "65 6f 75 74 00 00 00 03 31 30 30 00 00 00 1d 72 70 63 5f 74 72 61 63 65 5f 63 6f 6e 74 65 78 74"
    "2e 73 6f 66 61 54 72 61 63 65 49 64 00 00 00 1e 30 62 61 36 31 36 61 31 31 35 32 33 32 35 31 38"
    "31 39 31 31 34 31 30 30 32 31 38 37 33 38 00 00 00 1f 72 70 63 5f 74 72 61 63 65 5f 63 6f 6e 74"
    "65 78 74 2e 73 6f 66 61 43 61 6c 6c 65 72 49 64 63 00 00 00 03 64 65 76 00 00 00 1e 72 70 63 5f"
    "74 72 61 63 65 5f 63 6f 6e 74 65 78 74 2e 73 6f 66 61 43 61 6c 6c 65 72 49 70 00 00 00 0d 31 31"
    "2e 31 36 36 2e 32 32 2e 31 36 31 00 00 00 1e 72 70 63 5f 74 72 61 63 65 5f 63 6f 6e 74 65 78 74"
    "2e 73 6f 66 61 50 65 6e 41 74 74 72 73 00 00 00 00 00 00 00 1b 72 70 63 5f 74 72 61 63 65 5f 63"
    "6f 6e 74 65 78 74 2e 7a 70 72 6f 78 79 55 49 44 00 00 00 00 00 00 00 20 72 70 63 5f 74 72 61 63"
    "65 5f 63 6f 6e 74 65 78 74 2e 73 6f 66 61 43 61 6c 6c 65 72 5a 6f 6e 65 00 00 00 05 47 5a 30 30"
    "42 00 00 00 14 73 6f 66 61 5f 68 65 61 64 5f 74 61 72 67 65 74 5f 61 70 70 00 00 00 04 62 61 72"
    "31 00 00 00 07 73 65 72 76 69 63 65 00 00 00 3b 63 6f 6d 2e 61 6c 69 70 61 79 2e 72 70 63 2e 63"
    "6f 6d 6d 6f 6e 2e 73 65 72 76 69 63 65 2e 66 61 63 61 64 65 2e 70 62 2e 53 61 6d 70 6c 65 53 65"
    "72 76 69 63 65 50 62 3a 31 2e 30 00 00 00 19 72 70 63 5f 74 72 61 63 65 5f 63 6f 6e 74 65 78 74"
    "2e 45 6c 61 73 74 69 63 00 00 00 01 46 00 00 00 1d 72 70 63 5f 74 72 61 63 65 5f 63 6f 6e 74 65"
    "78 74 2e 73 79 73 50 65 6e 41 74 74 72 73 00 00 00 00 00 00 00 22 72 70 63 5f 74 72 61 63 65 5f"
    "63 6f 6e 74 65 78 74 2e 7a 70 72 6f 78 79 54 61 72 67 65 74 5a 6f 6e 65 00 00 00 00 00 00 00 1f"
    "72 70 63 5f 74 72 61 63 65 5f 63 6f 6e 74 65 78 74 2e 73 6f 66 61 43 61 6c 6c 65 72 41 70 70 00"
    "00 00 03 66 6f 6f 00 00 00 15 73 6f 66 61 5f 68 65 61 64 5f 6d 65 74 68 6f 64 5f 6e 61 6d 65 00"
    "00 00 05 68 65 6c 6c 6f 0a 01 61"
);

/// A Bolt v1 response (protobuf), id 0x84, status SUCCESS, class
/// `com.alipay.sofa.rpc.core.response.SofaResponse`, no header map.
///
/// Source: <https://github.com/sofastack/sofa-bolt-python>, file
/// `tests/test_bolt_package.py`, `test_from_stream` (first `bs`), commit
/// 1b5e24f64e0fda069f37ca245bf66013883fbb78.
pub const BOLT_RESPONSE_PROTOBUF: [u8; 69] = hex!(
    "01 00 00 02 01 00 00 00 84 0b 00 00 00 2e 00 00 00 00 00 03 63 6f 6d 2e 61 6c 69 70 61 79 2e 73"
    "6f 66 61 2e 72 70 63 2e 63 6f 72 65 2e 72 65 73 70 6f 6e 73 65 2e 53 6f 66 61 52 65 73 70 6f 6e"
    "73 65 0a 01 61"
);

/// A Bolt v1 response (hessian2), id 1, status SERVER_EXCEPTION (0x0002),
/// class `com.alipay.remoting.rpc.exception.RpcServerException`.
///
/// Source: <https://github.com/sofastack/sofa-bolt-node>, file
/// `test/decoder.test.js`, "should decode RpcServerException ok", commit
/// b685f9300c0fb32a16533edd8358f7b3af5fc7c2.
pub const BOLT_RESPONSE_SERVER_EXCEPTION: [u8; 1193] = hex!(
    "01 00 00 02 01 00 00 00 01 01 00 02 00 34 00 00 00 00 04 61 63 6f 6d 2e 61 6c 69 70 61 79 2e 72"
    "65 6d 6f 74 69 6e 67 2e 72 70 63 2e 65 78 63 65 70 74 69 6f 6e 2e 52 70 63 53 65 72 76 65 72 45"
    "78 63 65 70 74 69 6f 6e 4f c8 34 63 6f 6d 2e 61 6c 69 70 61 79 2e 72 65 6d 6f 74 69 6e 67 2e 72"
    "70 63 2e 65 78 63 65 70 74 69 6f 6e 2e 52 70 63 53 65 72 76 65 72 45 78 63 65 70 74 69 6f 6e 94"
    "0d 64 65 74 61 69 6c 4d 65 73 73 61 67 65 05 63 61 75 73 65 0a 73 74 61 63 6b 54 72 61 63 65 14"
    "73 75 70 70 72 65 73 73 65 64 45 78 63 65 70 74 69 6f 6e 73 6f 90 53 00 d1 63 6f 6d 2e 61 6c 69"
    "70 61 79 2e 72 65 6d 6f 74 69 6e 67 2e 65 78 63 65 70 74 69 6f 6e 2e 43 6f 64 65 63 45 78 63 65"
    "70 74 69 6f 6e 3a 20 45 78 63 65 70 74 69 6f 6e 20 63 61 75 67 68 74 20 77 68 65 6e 20 64 65 73"
    "65 72 69 61 6c 69 7a 65 20 63 6f 6e 74 65 6e 74 20 6f 66 20 72 70 63 20 72 65 71 75 65 73 74 20"
    "63 6f 6d 6d 61 6e 64 21 2e 20 41 64 64 69 74 69 6f 6e 61 6c 45 72 72 4d 73 67 3a 20 44 65 73 65"
    "72 69 61 6c 69 7a 65 20 52 70 63 52 65 71 75 65 73 74 43 6f 6d 6d 61 6e 64 20 66 61 69 6c 65 64"
    "20 77 68 65 6e 20 70 72 6f 63 65 73 73 20 69 6e 20 52 70 63 52 65 71 75 65 73 74 50 72 6f 63 65"
    "73 73 6f 72 2c 20 69 64 3d 31 4a 00 56 74 00 1c 5b 6a 61 76 61 2e 6c 61 6e 67 2e 53 74 61 63 6b"
    "54 72 61 63 65 45 6c 65 6d 65 6e 74 6e 08 4f ab 6a 61 76 61 2e 6c 61 6e 67 2e 53 74 61 63 6b 54"
    "72 61 63 65 45 6c 65 6d 65 6e 74 94 0e 64 65 63 6c 61 72 69 6e 67 43 6c 61 73 73 0a 6d 65 74 68"
    "6f 64 4e 61 6d 65 08 66 69 6c 65 4e 61 6d 65 0a 6c 69 6e 65 4e 75 6d 62 65 72 6f 91 53 00 32 63"
    "6f 6d 2e 61 6c 69 70 61 79 2e 72 65 6d 6f 74 69 6e 67 2e 72 70 63 2e 70 72 6f 74 6f 63 6f 6c 2e"
    "52 70 63 52 65 71 75 65 73 74 43 6f 6d 6d 61 6e 64 12 64 65 73 65 72 69 61 6c 69 7a 65 43 6f 6e"
    "74 65 6e 74 16 52 70 63 52 65 71 75 65 73 74 43 6f 6d 6d 61 6e 64 2e 6a 61 76 61 c8 85 6f 91 53"
    "00 22 63 6f 6d 2e 61 6c 69 70 61 79 2e 72 65 6d 6f 74 69 6e 67 2e 72 70 63 2e 52 70 63 43 6f 6d"
    "6d 61 6e 64 0b 64 65 73 65 72 69 61 6c 69 7a 65 0f 52 70 63 43 6f 6d 6d 61 6e 64 2e 6a 61 76 61"
    "c8 5e 6f 91 53 00 22 63 6f 6d 2e 61 6c 69 70 61 79 2e 72 65 6d 6f 74 69 6e 67 2e 72 70 63 2e 52"
    "70 63 43 6f 6d 6d 61 6e 64 0b 64 65 73 65 72 69 61 6c 69 7a 65 0f 52 70 63 43 6f 6d 6d 61 6e 64"
    "2e 6a 61 76 61 c8 73 6f 91 53 00 34 63 6f 6d 2e 61 6c 69 70 61 79 2e 72 65 6d 6f 74 69 6e 67 2e"
    "72 70 63 2e 70 72 6f 74 6f 63 6f 6c 2e 52 70 63 52 65 71 75 65 73 74 50 72 6f 63 65 73 73 6f 72"
    "09 64 6f 50 72 6f 63 65 73 73 18 52 70 63 52 65 71 75 65 73 74 50 72 6f 63 65 73 73 6f 72 2e 6a"
    "61 76 61 c8 86 6f 91 53 00 40 63 6f 6d 2e 61 6c 69 70 61 79 2e 72 65 6d 6f 74 69 6e 67 2e 72 70"
    "63 2e 70 72 6f 74 6f 63 6f 6c 2e 52 70 63 52 65 71 75 65 73 74 50 72 6f 63 65 73 73 6f 72 24 50"
    "72 6f 63 65 73 73 54 61 73 6b 03 72 75 6e 18 52 70 63 52 65 71 75 65 73 74 50 72 6f 63 65 73 73"
    "6f 72 2e 6a 61 76 61 c9 2d 6f 91 53 00 27 6a 61 76 61 2e 75 74 69 6c 2e 63 6f 6e 63 75 72 72 65"
    "6e 74 2e 54 68 72 65 61 64 50 6f 6f 6c 45 78 65 63 75 74 6f 72 09 72 75 6e 57 6f 72 6b 65 72 17"
    "54 68 72 65 61 64 50 6f 6f 6c 45 78 65 63 75 74 6f 72 2e 6a 61 76 61 cc 7b 6f 91 53 00 2e 6a 61"
    "76 61 2e 75 74 69 6c 2e 63 6f 6e 63 75 72 72 65 6e 74 2e 54 68 72 65 61 64 50 6f 6f 6c 45 78 65"
    "63 75 74 6f 72 24 57 6f 72 6b 65 72 03 72 75 6e 17 54 68 72 65 61 64 50 6f 6f 6c 45 78 65 63 75"
    "74 6f 72 2e 6a 61 76 61 ca 6e 6f 91 10 6a 61 76 61 2e 6c 61 6e 67 2e 54 68 72 65 61 64 03 72 75"
    "6e 0b 54 68 72 65 61 64 2e 6a 61 76 61 cb 51 7a 56 74 00 32 6a 61 76 61 2e 75 74 69 6c 2e 43 6f"
    "6c 6c 65 63 74 69 6f 6e 73 24 55 6e 6d 6f 64 69 66 69 61 62 6c 65 52 61 6e 64 6f 6d 41 63 63 65"
    "73 73 4c 69 73 74 6e 00 7a"
);

/// A Bolt **v2** response (protocol code 2, CRC enabled): not Bolt v1, so
/// the codec must refuse it with `Unsupported`, not misparse it.
///
/// Source: <https://github.com/sofastack/sofa-bolt-node>, file
/// `test/decoder.test.js`, "should decode bolt v2 with crc response", commit
/// b685f9300c0fb32a16533edd8358f7b3af5fc7c2.
pub const BOLT_V2_RESPONSE: [u8; 822] = hex!(
    "02 02 00 00 02 01 00 00 00 01 01 01 00 00 00 2e 00 00 00 00 02 ee 63 6f 6d 2e 61 6c 69 70 61 79"
    "2e 73 6f 66 61 2e 72 70 63 2e 63 6f 72 65 2e 72 65 73 70 6f 6e 73 65 2e 53 6f 66 61 52 65 73 70"
    "6f 6e 73 65 4f be 63 6f 6d 2e 61 6c 69 70 61 79 2e 73 6f 66 61 2e 72 70 63 2e 63 6f 72 65 2e 72"
    "65 73 70 6f 6e 73 65 2e 53 6f 66 61 52 65 73 70 6f 6e 73 65 94 07 69 73 45 72 72 6f 72 08 65 72"
    "72 6f 72 4d 73 67 0b 61 70 70 52 65 73 70 6f 6e 73 65 0d 72 65 73 70 6f 6e 73 65 50 72 6f 70 73"
    "6f 90 46 4e 4f c8 49 63 6f 6d 2e 61 6c 69 70 61 79 2e 61 63 63 74 72 61 6e 73 71 75 65 72 79 2e"
    "63 6f 6d 6d 6f 6e 2e 73 65 72 76 69 63 65 2e 66 61 63 61 64 65 2e 72 65 73 75 6c 74 2e 41 63 63"
    "74 72 61 6e 73 51 75 65 72 79 52 65 73 75 6c 74 a8 0b 72 65 74 75 72 6e 43 6f 75 6e 74 10 6c 61"
    "74 65 73 74 54 72 61 6e 73 4c 6f 67 49 64 07 68 69 73 44 61 74 65 0b 61 63 63 6f 75 6e 74 44 61"
    "74 65 11 61 63 63 6f 75 6e 74 49 73 46 61 69 6c 6f 76 65 72 09 71 75 65 72 79 54 78 49 64 07 73"
    "75 63 63 65 73 73 0a 72 65 73 75 6c 74 43 6f 64 65 0a 72 65 73 75 6c 74 44 65 73 63 0c 72 65 74"
    "75 72 6e 41 6d 6f 75 6e 74 0c 61 63 63 6f 75 6e 74 4c 6f 67 56 4f 10 61 63 63 6f 75 6e 74 4c 6f"
    "67 56 4f 4c 69 73 74 14 61 63 63 6f 75 6e 74 4c 6f 67 53 74 61 74 56 4f 4c 69 73 74 11 61 63 63"
    "6f 75 6e 74 4c 6f 67 53 75 6d 49 6e 66 6f 12 61 63 63 6f 75 6e 74 4c 6f 67 50 61 67 65 4c 69 73"
    "74 11 66 72 65 65 7a 65 4c 6f 67 50 61 67 65 4c 69 73 74 16 61 63 63 6f 75 6e 74 46 72 65 65 7a"
    "65 4c 6f 67 56 4f 4c 69 73 74 13 66 72 65 65 7a 65 41 63 63 6f 75 6e 74 56 4f 4c 69 73 74 0e 61"
    "63 63 6f 75 6e 74 44 61 69 6c 79 56 4f 14 69 6e 6e 65 72 41 63 63 6f 75 6e 74 49 6e 66 6f 4c 69"
    "73 74 10 69 6e 6e 65 72 41 63 63 6f 75 6e 74 49 6e 66 6f 18 69 6e 6e 65 72 41 63 63 6f 75 6e 74"
    "49 6e 66 6f 50 61 67 65 4c 69 73 74 17 73 69 6d 70 6c 65 49 6e 54 72 61 6e 73 55 6e 69 71 56 4f"
    "4c 69 73 74 0c 65 72 72 6f 72 43 6f 6e 74 65 78 74 6f 91 e0 e0 08 32 30 31 37 30 33 30 31 4e 46"
    "10 32 30 38 38 31 30 32 30 30 31 32 36 37 33 37 37 54 14 51 55 45 52 59 5f 52 45 53 55 4c 54 5f"
    "53 55 43 43 45 53 53 02 e6 88 90 e5 8a 9f 4f b7 63 6f 6d 2e 69 77 61 6c 6c 65 74 2e 62 69 7a 2e"
    "63 6f 6d 6d 6f 6e 2e 75 74 69 6c 2e 6d 6f 6e 65 79 2e 4d 6f 6e 65 79 92 04 63 65 6e 74 08 63 75"
    "72 72 65 6e 63 79 6f 92 e0 4f a2 6a 61 76 61 2e 75 74 69 6c 2e 43 75 72 72 65 6e 63 79 91 0c 63"
    "75 72 72 65 6e 63 79 43 6f 64 65 6f 93 03 43 4e 59 4e 56 6e 00 7a 56 6e 00 7a 4e 4e 4e 56 6e 00"
    "7a 56 6e 00 7a 4e 56 6e 00 7a 4e 4e 56 6e 00 7a 4e 4e fa 4b be b0"
);

/// A Bolt v1 heartbeat request: cmd code 0, id 7, codec hessian2, timeout
/// 3000 ms, no class, header or content. Hand-built from the layout in
/// sofa-bolt-node `lib/protocol/v1.js` and `lib/protocol/heartbeat_cmd.js`
/// (which defaults the heartbeat timeout to 3000).
pub const BOLT_HEARTBEAT_REQUEST: [u8; 22] =
    hex!("01 01 00 00 01 00 00 00 07 01 00 00 0b b8 00 00 00 00 00 00 00 00");

/// The heartbeat acknowledgement for [`BOLT_HEARTBEAT_REQUEST`]: a response
/// with cmd code 0 and status SUCCESS. Hand-built from sofa-bolt-node
/// `lib/protocol/heartbeat_ack_cmd.js` (empty class, header, content).
pub const BOLT_HEARTBEAT_ACK: [u8; 20] =
    hex!("01 00 00 00 01 00 00 00 07 01 00 00 00 00 00 00 00 00 00 00");

/// Every fixture of this protocol, by the name its fuzz seed files take.
pub const ALL: &[(&str, &[u8])] = &[
    ("bolt_request_protobuf", &BOLT_REQUEST_PROTOBUF),
    ("bolt_response_protobuf", &BOLT_RESPONSE_PROTOBUF),
    (
        "bolt_response_server_exception",
        &BOLT_RESPONSE_SERVER_EXCEPTION,
    ),
    ("bolt_v2_response", &BOLT_V2_RESPONSE),
    ("bolt_heartbeat_request", &BOLT_HEARTBEAT_REQUEST),
    ("bolt_heartbeat_ack", &BOLT_HEARTBEAT_ACK),
];
