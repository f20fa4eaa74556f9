//! Byte fixtures for the codec tests, the fuzz seed corpus and the stable
//! fuzz smoke runner. Public (hidden) so `fuzz/` and `worker/tests/` share
//! one copy.
//!
//! Captured fixtures are copied byte for byte from the test suites of other
//! implementations of each protocol; the source (repository, file, test and
//! the commit it was read at) is given beside each. Where no capture exists
//! the fixture is built by hand from the documented layout, and says so.

use hex_literal::hex;

// === Bolt v1 ===

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

// === Dubbo 2 ===

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

// === RocketMQ remoting ===
//
// The captures below are traffic of the Apache RocketMQ Java client 5.2.0
// and of the NewLife.RocketMQ .NET client against real brokers, recorded in
// <https://github.com/NewLifeX/NewLife.RocketMQ>, file
// `XUnitTestRocketMQ/Protocol/CommandTests.cs`, commit
// 75128a0e913cce424358b21a930dda5636cc5d98; each names its test.

/// JSON request GET_ROUTEINFO_BY_TOPIC (105), opaque 0, ext `topic` =
/// `TeZ_Test_Lng`, from the Java client. Test `GetRouteInfo_v520_Java`.
pub const ROCKETMQ_JSON_GET_ROUTE: [u8; 142] = hex!(
    "00 00 00 8a 00 00 00 86 7b 22 63 6f 64 65 22 3a 31 30 35 2c 22 65 78 74 46 69 65 6c 64 73 22 3a"
    "7b 22 74 6f 70 69 63 22 3a 22 54 65 5a 5f 54 65 73 74 5f 4c 6e 67 22 7d 2c 22 66 6c 61 67 22 3a"
    "30 2c 22 6c 61 6e 67 75 61 67 65 22 3a 22 4a 41 56 41 22 2c 22 6f 70 61 71 75 65 22 3a 30 2c 22"
    "73 65 72 69 61 6c 69 7a 65 54 79 70 65 43 75 72 72 65 6e 74 52 50 43 22 3a 22 4a 53 4f 4e 22 2c"
    "22 76 65 72 73 69 6f 6e 22 3a 34 35 33 7d"
);

/// JSON response (flag 1), code SUCCESS, opaque 0, with a JSON body. Test
/// `DecodeRouteInfo_v520_Java`.
pub const ROCKETMQ_JSON_ROUTE_RESPONSE: [u8; 366] = hex!(
    "00 00 01 6a 00 00 00 5f 7b 22 63 6f 64 65 22 3a 30 2c 22 66 6c 61 67 22 3a 31 2c 22 6c 61 6e 67"
    "75 61 67 65 22 3a 22 4a 41 56 41 22 2c 22 6f 70 61 71 75 65 22 3a 30 2c 22 73 65 72 69 61 6c 69"
    "7a 65 54 79 70 65 43 75 72 72 65 6e 74 52 50 43 22 3a 22 4a 53 4f 4e 22 2c 22 76 65 72 73 69 6f"
    "6e 22 3a 34 35 33 7d 7b 22 62 72 6f 6b 65 72 44 61 74 61 73 22 3a 5b 7b 22 62 72 6f 6b 65 72 41"
    "64 64 72 73 22 3a 7b 22 30 22 3a 22 31 30 2e 32 2e 33 2e 31 31 37 3a 31 30 39 31 31 22 7d 2c 22"
    "62 72 6f 6b 65 72 4e 61 6d 65 22 3a 22 62 72 6f 6b 65 72 2d 61 22 2c 22 63 6c 75 73 74 65 72 22"
    "3a 22 44 65 66 61 75 6c 74 43 6c 75 73 74 65 72 22 2c 22 65 6e 61 62 6c 65 41 63 74 69 6e 67 4d"
    "61 73 74 65 72 22 3a 66 61 6c 73 65 7d 5d 2c 22 66 69 6c 74 65 72 53 65 72 76 65 72 54 61 62 6c"
    "65 22 3a 7b 7d 2c 22 71 75 65 75 65 44 61 74 61 73 22 3a 5b 7b 22 62 72 6f 6b 65 72 4e 61 6d 65"
    "22 3a 22 62 72 6f 6b 65 72 2d 61 22 2c 22 70 65 72 6d 22 3a 36 2c 22 72 65 61 64 51 75 65 75 65"
    "4e 75 6d 73 22 3a 38 2c 22 74 6f 70 69 63 53 79 73 46 6c 61 67 22 3a 30 2c 22 77 72 69 74 65 51"
    "75 65 75 65 4e 75 6d 73 22 3a 38 7d 5d 7d"
);

/// JSON request SEND_MESSAGE_V2 (310) from the Java client: ext fields in
/// `SendMessageRequestHeaderV2` short form (`b` = topic `TeZ_Test_Lng`),
/// `\u0001` escapes in `i`, opaque 2. Test `SendMessageV2_v520_Java`.
pub const ROCKETMQ_JSON_SEND_V2_JAVA: [u8; 1037] = hex!(
    "00 00 04 09 00 00 01 81 7b 22 63 6f 64 65 22 3a 33 31 30 2c 22 65 78 74 46 69 65 6c 64 73 22 3a"
    "7b 22 61 22 3a 22 52 30 31 5f 70 72 6f 64 75 63 65 72 5f 31 32 33 22 2c 22 62 22 3a 22 54 65 5a"
    "5f 54 65 73 74 5f 4c 6e 67 22 2c 22 63 22 3a 22 54 42 57 31 30 32 22 2c 22 64 22 3a 22 34 22 2c"
    "22 65 22 3a 22 30 22 2c 22 66 22 3a 22 30 22 2c 22 67 22 3a 22 31 37 34 39 38 38 33 37 37 38 36"
    "38 36 22 2c 22 68 22 3a 22 30 22 2c 22 69 22 3a 22 55 4e 49 51 5f 4b 45 59 5c 75 30 30 30 31 32"
    "34 30 30 44 44 30 32 31 30 30 38 30 30 31 35 32 42 32 42 37 44 30 34 31 39 44 36 44 44 35 45 39"
    "45 46 43 31 38 42 34 41 41 43 32 34 36 32 31 32 41 37 44 30 30 30 30 5c 75 30 30 30 32 57 41 49"
    "54 5c 75 30 30 30 31 74 72 75 65 5c 75 30 30 30 32 54 41 47 53 5c 75 30 30 30 31 2a 5c 75 30 30"
    "30 32 22 2c 22 6a 22 3a 22 30 22 2c 22 6b 22 3a 22 66 61 6c 73 65 22 2c 22 6d 22 3a 22 66 61 6c"
    "73 65 22 2c 22 6e 22 3a 22 62 72 6f 6b 65 72 2d 61 22 7d 2c 22 66 6c 61 67 22 3a 30 2c 22 6c 61"
    "6e 67 75 61 67 65 22 3a 22 4a 41 56 41 22 2c 22 6f 70 61 71 75 65 22 3a 32 2c 22 73 65 72 69 61"
    "6c 69 7a 65 54 79 70 65 43 75 72 72 65 6e 74 52 50 43 22 3a 22 4a 53 4f 4e 22 2c 22 76 65 72 73"
    "69 6f 6e 22 3a 34 35 33 7d 5b 31 2e 30 2c 31 35 2e 30 2c 31 2e 30 31 33 32 35 2c 30 2e 35 2c 35"
    "37 32 2e 35 2c 31 2e 30 31 33 32 35 2c 31 35 2e 30 2c 31 2e 30 35 30 37 30 38 31 37 32 2c 32 39"
    "39 39 2e 39 34 32 37 31 35 2c 31 2e 30 32 35 31 38 35 37 34 37 2c 32 2e 31 31 35 37 35 37 34 39"
    "37 2c 39 30 2e 30 2c 31 2e 30 35 30 37 30 38 31 37 32 2c 32 2e 31 31 35 37 35 37 34 39 37 2c 34"
    "2e 32 36 30 33 39 33 30 34 31 2c 35 37 32 2e 35 2c 34 2e 32 36 30 33 39 33 30 34 31 2c 34 32 33"
    "2e 30 2c 31 38 2e 31 39 2c 31 31 31 31 2e 30 2c 31 2e 30 2c 31 35 2e 30 2c 31 2e 30 31 33 32 35"
    "2c 30 2e 35 2c 31 38 2e 36 30 38 32 35 38 31 39 2c 31 2e 30 31 33 32 35 2c 31 35 2e 30 2c 31 2e"
    "30 35 30 37 30 38 31 37 32 2c 32 39 39 39 2e 39 34 32 37 31 35 2c 31 2e 30 32 35 31 38 35 37 34"
    "37 2c 32 2e 31 31 35 37 35 37 34 39 37 2c 39 30 2e 30 2c 31 2e 30 35 30 37 30 38 31 37 32 2c 32"
    "2e 31 31 35 37 35 37 34 39 37 2c 34 2e 32 36 30 33 39 33 30 34 31 2c 31 38 2e 36 30 38 32 35 38"
    "31 39 2c 34 32 33 2e 30 2c 34 32 33 2e 30 2c 31 38 2e 31 39 2c 31 31 31 31 2e 30 2c 31 2e 30 2c"
    "31 35 2e 30 2c 31 2e 30 31 33 32 35 2c 30 2e 35 2c 31 38 2e 36 30 38 32 35 38 31 39 2c 31 2e 30"
    "31 33 32 35 2c 31 35 2e 30 2c 31 2e 30 35 30 37 30 38 31 37 32 2c 32 39 39 39 2e 39 34 32 37 31"
    "35 2c 31 2e 30 32 35 31 38 35 37 34 37 2c 32 2e 31 31 35 37 35 37 34 39 37 2c 39 30 2e 30 2c 31"
    "2e 30 35 30 37 30 38 31 37 32 2c 32 2e 31 31 35 37 35 37 34 39 37 2c 34 2e 32 36 30 33 39 33 30"
    "34 31 2c 35 37 32 2e 35 2c 32 39 39 39 2e 39 34 32 37 31 35 2c 34 32 33 2e 30 2c 31 38 2e 31 39"
    "2c 39 30 2e 30 2c 31 2e 30 2c 31 35 2e 30 2c 31 2e 30 31 33 32 35 2c 30 2e 35 2c 31 38 2e 36 30"
    "38 32 35 38 31 39 2c 31 2e 30 31 33 32 35 2c 31 35 2e 30 2c 31 2e 30 35 30 37 30 38 31 37 32 2c"
    "32 39 39 39 2e 39 34 32 37 31 35 2c 31 2e 30 32 35 31 38 35 37 34 37 2c 32 2e 31 31 35 37 35 37"
    "34 39 37 2c 39 30 2e 30 2c 31 2e 30 35 30 37 30 38 31 37 32 2c 32 2e 31 31 35 37 35 37 34 39 37"
    "2c 31 2e 30 32 35 31 38 35 37 34 37 5d"
);

/// JSON request SEND_MESSAGE_V2 from the .NET client with *raw* control
/// characters (0x01, 0x02) inside a JSON string — invalid strict JSON that
/// the Java broker (fastjson) accepts, so the codec must too. Topic
/// `IOC_INS_PARSE_TOPIC`, opaque 1576. Test `DecodeJson2`.
pub const ROCKETMQ_JSON_SEND_V2_DOTNET_RAW_CONTROL: [u8; 784] = hex!(
    "00 00 03 0c 00 00 01 4c 7b 22 63 6f 64 65 22 3a 33 31 30 2c 22 65 78 74 46 69 65 6c 64 73 22 3a"
    "7b 22 61 22 3a 22 44 45 46 41 55 4c 54 5f 50 52 4f 44 55 43 45 52 22 2c 22 62 22 3a 22 49 4f 43"
    "5f 49 4e 53 5f 50 41 52 53 45 5f 54 4f 50 49 43 22 2c 22 63 22 3a 22 54 42 57 31 30 32 22 2c 22"
    "64 22 3a 22 30 22 2c 22 65 22 3a 22 36 22 2c 22 66 22 3a 22 30 22 2c 22 67 22 3a 22 31 36 39 33"
    "34 35 39 38 32 32 35 37 33 22 2c 22 68 22 3a 22 30 22 2c 22 69 22 3a 22 54 41 47 53 01 54 30 32"
    "30 30 02 4b 45 59 53 01 30 61 30 37 34 35 63 64 31 36 39 33 34 35 39 38 32 32 35 36 30 62 33 36"
    "33 65 66 37 33 34 02 57 41 49 54 01 54 72 75 65 02 22 2c 22 6a 22 3a 22 30 22 2c 22 6b 22 3a 22"
    "46 61 6c 73 65 22 7d 2c 22 6c 61 6e 67 75 61 67 65 22 3a 22 44 4f 54 4e 45 54 22 2c 22 6f 70 61"
    "71 75 65 22 3a 31 35 37 36 2c 22 73 65 72 69 61 6c 69 7a 65 54 79 70 65 43 75 72 72 65 6e 74 52"
    "50 43 22 3a 22 4a 53 4f 4e 22 2c 22 76 65 72 73 69 6f 6e 22 3a 33 37 33 2c 22 72 65 6d 61 72 6b"
    "22 3a 22 53 45 4e 44 5f 4d 45 53 53 41 47 45 5f 56 32 22 7d 7b 22 4b 69 6e 64 22 3a 22 54 30 32"
    "30 30 22 2c 22 56 65 72 73 69 6f 6e 22 3a 22 4a 54 32 30 31 33 22 2c 22 4d 6f 62 69 6c 65 22 3a"
    "22 31 34 32 37 30 35 37 39 34 35 37 22 2c 22 53 65 71 75 65 6e 63 65 22 3a 35 31 35 34 2c 22 42"
    "6f 64 79 22 3a 7b 22 41 6c 61 72 6d 22 3a 30 2c 22 53 74 61 74 75 73 22 3a 37 38 36 34 33 35 2c"
    "22 4c 61 74 69 74 75 64 65 22 3a 33 36 38 37 31 33 30 30 2c 22 4c 6f 6e 67 69 74 75 64 65 22 3a"
    "31 31 37 31 32 31 38 33 31 2c 22 41 6c 74 69 74 75 64 65 22 3a 31 36 2c 22 53 70 65 65 64 22 3a"
    "30 2c 22 44 69 72 65 63 74 69 6f 6e 22 3a 31 31 35 2c 22 47 50 53 54 69 6d 65 22 3a 22 32 30 32"
    "33 2d 30 38 2d 33 31 20 31 33 3a 33 30 3a 31 36 22 2c 22 41 64 64 69 74 69 6f 6e 61 6c 73 22 3a"
    "7b 22 e9 87 8c e7 a8 8b 22 3a 32 36 35 30 34 30 39 2c 22 e9 80 9f e5 ba a6 22 3a 30 2c 22 e8 a7"
    "86 e9 a2 91 e6 8a a5 e8 ad a6 22 3a 30 2c 22 e8 a7 86 e9 a2 91 e4 b8 a2 e5 a4 b1 22 3a 30 2c 22"
    "e8 a7 86 e9 a2 91 e9 81 ae e6 8c a1 22 3a 30 2c 22 e5 ad 98 e5 82 a8 e6 95 85 e9 9a 9c 22 3a 30"
    "2c 22 e5 bc 82 e5 b8 b8 e9 a9 be e9 a9 b6 22 3a 22 41 41 41 41 22 2c 22 e8 bd a6 e8 be 86 e4 bf"
    "a1 e5 8f b7 22 3a 30 2c 22 e6 a8 a1 e6 8b 9f e9 87 8f 22 3a 30 2c 22 e4 bf a1 e5 8f b7 e5 bc ba"
    "e5 ba a6 22 3a 34 2c 22 e5 8d ab e6 98 9f e6 95 b0 22 3a 33 32 2c 22 31 38 33 22 3a 30 2c 22 32"
    "34 38 22 3a 30 2c 22 32 33 39 22 3a 30 7d 7d 7d"
);

/// JSON request SEND_MESSAGE_V2 from the .NET client with PascalCase keys
/// (`Code`, `ExtFields`, `Opaque`…), which fastjson matches case-
/// insensitively. Opaque 1. Test `SendMessageV2_v520_Dotnet2`.
pub const ROCKETMQ_JSON_SEND_V2_DOTNET_PASCAL: [u8; 329] = hex!(
    "00 00 01 45 00 00 01 2e 7b 22 43 6f 64 65 22 3a 33 31 30 2c 22 45 78 74 46 69 65 6c 64 73 22 3a"
    "7b 22 61 22 3a 22 52 30 31 5f 70 72 6f 64 75 63 65 72 5f 31 32 33 22 2c 22 62 22 3a 22 54 65 5a"
    "5f 54 65 73 74 5f 4c 6e 67 22 2c 22 63 22 3a 22 54 42 57 31 30 32 22 2c 22 64 22 3a 22 34 22 2c"
    "22 65 22 3a 22 30 22 2c 22 66 22 3a 22 30 22 2c 22 67 22 3a 22 31 37 34 39 39 32 33 33 35 32 34"
    "38 36 22 2c 22 68 22 3a 22 30 22 2c 22 69 22 3a 22 54 41 47 53 5c 75 30 30 30 31 2a 5c 75 30 30"
    "30 32 57 41 49 54 5c 75 30 30 30 31 54 72 75 65 5c 75 30 30 30 32 22 2c 22 6a 22 3a 22 30 22 2c"
    "22 6b 22 3a 22 46 61 6c 73 65 22 7d 2c 22 4c 61 6e 67 75 61 67 65 22 3a 22 44 4f 54 4e 45 54 22"
    "2c 22 4f 70 61 71 75 65 22 3a 31 2c 22 53 65 72 69 61 6c 69 7a 65 54 79 70 65 43 75 72 72 65 6e"
    "74 52 50 43 22 3a 22 4a 53 4f 4e 22 2c 22 56 65 72 73 69 6f 6e 22 3a 34 35 33 2c 22 52 65 6d 61"
    "72 6b 22 3a 22 53 45 4e 44 5f 4d 45 53 53 41 47 45 5f 56 32 22 7d 32 30 32 35 2d 30 36 2d 31 35"
    "20 30 31 3a 34 39 3a 30 39"
);

/// JSON request HEART_BEAT (34) with an empty ext object, opaque 3. Test
/// `HeartBeat_v520_Java`.
pub const ROCKETMQ_JSON_HEART_BEAT: [u8; 320] = hex!(
    "00 00 01 3c 00 00 00 6f 7b 22 63 6f 64 65 22 3a 33 34 2c 22 65 78 74 46 69 65 6c 64 73 22 3a 7b"
    "7d 2c 22 66 6c 61 67 22 3a 30 2c 22 6c 61 6e 67 75 61 67 65 22 3a 22 4a 41 56 41 22 2c 22 6f 70"
    "61 71 75 65 22 3a 33 2c 22 73 65 72 69 61 6c 69 7a 65 54 79 70 65 43 75 72 72 65 6e 74 52 50 43"
    "22 3a 22 4a 53 4f 4e 22 2c 22 76 65 72 73 69 6f 6e 22 3a 34 35 33 7d 7b 22 63 6c 69 65 6e 74 49"
    "44 22 3a 22 31 30 2e 31 2e 35 2e 39 40 34 30 37 30 30 23 39 35 35 32 32 30 30 38 37 38 32 32 35"
    "30 30 22 2c 22 63 6f 6e 73 75 6d 65 72 44 61 74 61 53 65 74 22 3a 5b 5d 2c 22 68 65 61 72 74 62"
    "65 61 74 46 69 6e 67 65 72 70 72 69 6e 74 22 3a 30 2c 22 70 72 6f 64 75 63 65 72 44 61 74 61 53"
    "65 74 22 3a 5b 7b 22 67 72 6f 75 70 4e 61 6d 65 22 3a 22 43 4c 49 45 4e 54 5f 49 4e 4e 45 52 5f"
    "50 52 4f 44 55 43 45 52 22 7d 2c 7b 22 67 72 6f 75 70 4e 61 6d 65 22 3a 22 52 30 31 5f 70 72 6f"
    "64 75 63 65 72 5f 31 32 33 22 7d 5d 2c 22 77 69 74 68 6f 75 74 53 75 62 22 3a 66 61 6c 73 65 7d"
);

/// Binary (ROCKETMQ serialize type) response: code 0, language JAVA,
/// version 373, opaque 1575, flag 1, no remark, no ext fields. Test
/// `DecodeRocketMQ`.
pub const ROCKETMQ_BINARY_RESPONSE: [u8; 29] =
    hex!("00 00 00 19 01 00 00 15 00 00 00 01 75 00 00 06 27 00 00 00 01 00 00 00 00 00 00 00 00");

/// Binary response with five ext fields (`queueId`, `TRACE_ON`,
/// `MSG_REGION`, `msgId`, `queueOffset`), opaque 1576. Test
/// `DecodeRocketMQ2`.
pub const ROCKETMQ_BINARY_RESPONSE_EXT: [u8; 157] = hex!(
    "00 00 00 99 01 00 00 95 00 00 00 01 75 00 00 06 28 00 00 00 01 00 00 00 00 00 00 00 80 00 07 71"
    "75 65 75 65 49 64 00 00 00 01 36 00 08 54 52 41 43 45 5f 4f 4e 00 00 00 04 74 72 75 65 00 0a 4d"
    "53 47 5f 52 45 47 49 4f 4e 00 00 00 0d 44 65 66 61 75 6c 74 52 65 67 69 6f 6e 00 05 6d 73 67 49"
    "64 00 00 00 20 30 41 30 39 30 46 32 38 30 30 30 30 32 41 39 46 30 30 30 30 32 32 39 45 38 39 37"
    "43 46 33 38 32 00 0b 71 75 65 75 65 4f 66 66 73 65 74 00 00 00 07 36 33 37 39 38 38 31"
);

/// Binary request REGISTER_BROKER (103), language JAVA, version 2333,
/// opaque 7, flag 0, remark `Sample Remark`, ext `key` = `value`, no body.
/// Hand-built from the layout asserted in Apache RocketMQ's
/// `remoting/src/test/java/org/apache/rocketmq/remoting/protocol/RocketMQSerializableTest.java`
/// (a 48-byte header: the 34-byte remark case plus 14 bytes of ext field),
/// with an opaque picked here.
pub const ROCKETMQ_BINARY_REQUEST: [u8; 56] = hex!(
    "00 00 00 34 01 00 00 30"
    "00 67 00 09 1d 00 00 00 07 00 00 00 00"
    "00 00 00 0d 53 61 6d 70 6c 65 20 52 65 6d 61 72 6b"
    "00 00 00 0e 00 03 6b 65 79 00 00 00 05 76 61 6c 75 65"
);

// === Tars ===
/// A Tars RequestPacket: iVersion 1, cPacketType 0 (normal), iRequestId 1
/// (INT1), servant `Baton.EchoServer.EchoObj`, function `echo`, the
/// argument `"hello"` at tag 1, iTimeout 3000, context `{zone: gz}`, empty
/// status.
///
/// Source: encoded by TarsGo v1.4.5 (`github.com/TarsCloud/TarsGo`, its
/// tars2go-generated `requestf` structs and `protocol.TarsProtocol`), by
/// `tests/interop/tars/fixtures` (`cd tests/interop/tars && go run
/// ./fixtures`, Go 1.26).
pub const TARS_REQUEST_ECHO: [u8; 71] = hex!(
    "00 00 00 47 10 01 2c 3c 40 01 56 18 42 61 74 6f 6e 2e 45 63 68 6f 53 65 72 76 65 72 2e 45 63 68"
    "6f 4f 62 6a 66 04 65 63 68 6f 7d 00 00 07 16 05 68 65 6c 6c 6f 81 0b b8 98 00 01 06 04 7a 6f 6e"
    "65 16 02 67 7a a8 0c"
);

/// A Tars oneway RequestPacket (cPacketType 1) whose iRequestId is 0, so
/// written as a bare ZERO_TAG head (`4c`); function `note`, empty context.
///
/// Source: encoded by TarsGo v1.4.5 (`github.com/TarsCloud/TarsGo`, its
/// tars2go-generated `requestf` structs and `protocol.TarsProtocol`), by
/// `tests/interop/tars/fixtures` (`cd tests/interop/tars && go run
/// ./fixtures`, Go 1.26).
pub const TARS_REQUEST_ONEWAY_ZERO_ID: [u8; 70] = hex!(
    "00 00 00 46 10 01 20 01 3c 4c 56 18 42 61 74 6f 6e 2e 45 63 68 6f 53 65 72 76 65 72 2e 45 63 68"
    "6f 4f 62 6a 66 04 6e 6f 74 65 7d 00 00 11 16 0f 66 69 72 65 20 61 6e 64 20 66 6f 72 67 65 74 81"
    "0b b8 98 0c a8 0c"
);

/// A Tars RequestPacket with iRequestId 70000 (INT4), iMessageType 4
/// (TARSMESSAGETYPEDYED), function `slowEcho`, iTimeout 60000 (INT4), a
/// 300-byte context value (STRING4) and a status entry.
///
/// Source: encoded by TarsGo v1.4.5 (`github.com/TarsCloud/TarsGo`, its
/// tars2go-generated `requestf` structs and `protocol.TarsProtocol`), by
/// `tests/interop/tars/fixtures` (`cd tests/interop/tars && go run
/// ./fixtures`, Go 1.26).
pub const TARS_REQUEST_LONG_CONTEXT: [u8; 409] = hex!(
    "00 00 01 99 10 01 2c 30 04 42 00 01 11 70 56 18 42 61 74 6f 6e 2e 45 63 68 6f 53 65 72 76 65 72"
    "2e 45 63 68 6f 4f 62 6a 66 08 73 6c 6f 77 45 63 68 6f 7d 00 00 06 16 04 73 6c 6f 77 82 00 00 ea"
    "60 98 00 01 06 05 74 72 61 63 65 17 00 00 01 2c 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74"
    "74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74"
    "74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74"
    "74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74"
    "74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74"
    "74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74"
    "74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74"
    "74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74"
    "74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74"
    "74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 74 a8 00 01 06"
    "0f 53 54 41 54 55 53 5f 44 59 45 44 5f 4b 45 59 16 07 75 73 65 72 2d 34 32"
);

/// A Tars ResponsePacket: iRequestId 1, iRet 0, the result `"a|hello"` at
/// tag 0 in sBuffer; TarsGo leaves out the empty optional sResultDesc and
/// context.
///
/// Source: encoded by TarsGo v1.4.5 (`github.com/TarsCloud/TarsGo`, its
/// tars2go-generated `requestf` structs and `protocol.TarsProtocol`), by
/// `tests/interop/tars/fixtures` (`cd tests/interop/tars && go run
/// ./fixtures`, Go 1.26).
pub const TARS_RESPONSE_ECHO: [u8; 26] =
    hex!("00 00 00 1a 10 01 2c 30 01 4c 5c 6d 00 00 09 06 07 61 7c 68 65 6c 6c 6f 78 0c");

/// A Tars ResponsePacket: iRequestId 300 (INT2), iRet -3
/// (TARSSERVERNOFUNCERR, INT1 `fd`), empty sBuffer, sResultDesc
/// `func mismatch`.
///
/// Source: encoded by TarsGo v1.4.5 (`github.com/TarsCloud/TarsGo`, its
/// tars2go-generated `requestf` structs and `protocol.TarsProtocol`), by
/// `tests/interop/tars/fixtures` (`cd tests/interop/tars && go run
/// ./fixtures`, Go 1.26).
pub const TARS_RESPONSE_NO_FUNC: [u8; 33] = hex!(
    "00 00 00 21 10 01 2c 31 01 2c 4c 50 fd 6d 00 0c 78 0c 86 0d 66 75 6e 63 20 6d 69 73 6d 61 74 63"
    "68"
);

/// A TUP RequestPacket (iVersion 3): iRequestId -2 (INT1 `fe`), function
/// `echo`, sBuffer a TUP `UniAttribute` (`{value: "hi"}`), empty maps.
///
/// Source: encoded by TarsGo v1.4.5 (`github.com/TarsCloud/TarsGo`, its
/// tars2go-generated `requestf` structs and `protocol.TarsProtocol`), by
/// `tests/interop/tars/fixtures` (`cd tests/interop/tars && go run
/// ./fixtures`, Go 1.26).
pub const TARS_REQUEST_TUP: [u8; 71] = hex!(
    "00 00 00 47 10 03 2c 3c 40 fe 56 18 42 61 74 6f 6e 2e 45 63 68 6f 53 65 72 76 65 72 2e 45 63 68"
    "6f 4f 62 6a 66 04 65 63 68 6f 7d 00 00 12 08 00 01 06 05 76 61 6c 75 65 1d 00 00 04 06 02 68 69"
    "81 0b b8 98 0c a8 0c"
);

/// The ResponsePacket baton's hijack writes for a timeout on request id 1:
/// iRet -7 (TARSINVOKETIMEOUT), sResultDesc `baton: upstream timeout`,
/// encoded here by TarsGo from the same fields, so the hijack is checked
/// byte for byte against TarsGo's own encoder.
///
/// Source: encoded by TarsGo v1.4.5 (`github.com/TarsCloud/TarsGo`, its
/// tars2go-generated `requestf` structs and `protocol.TarsProtocol`), by
/// `tests/interop/tars/fixtures` (`cd tests/interop/tars && go run
/// ./fixtures`, Go 1.26).
pub const TARS_RESPONSE_INVOKE_TIMEOUT: [u8; 42] = hex!(
    "00 00 00 2a 10 01 2c 30 01 4c 50 f9 6d 00 0c 78 0c 86 17 62 61 74 6f 6e 3a 20 75 70 73 74 72 65"
    "61 6d 20 74 69 6d 65 6f 75 74"
);

/// A Tars RequestPacket from TarsNode: iRequestId 40000 (INT4), function
/// `echo`, the argument `"hello"`, iTimeout 15000, context `{zone: b}`.
///
/// Source: encoded by TarsNode, `@tars/rpc` 2.0.15's request composer
/// (`core/rpc-tars/tars-client.js`) on `@tars/stream` 2.0.3, by
/// `tests/interop/tars/node/fixtures.js` (`cd tests/interop/tars/node &&
/// node fixtures.js`, Node 20).
pub const TARS_NODE_REQUEST_CONTEXT: [u8; 73] = hex!(
    "00 00 00 49 10 01 2c 3c 42 00 00 9c 40 56 18 42 61 74 6f 6e 2e 45 63 68 6f 53 65 72 76 65 72 2e"
    "45 63 68 6f 4f 62 6a 66 04 65 63 68 6f 7d 00 00 07 16 05 68 65 6c 6c 6f 81 3a 98 98 00 01 06 04"
    "7a 6f 6e 65 16 01 62 a8 0c"
);

/// A Tars oneway RequestPacket from TarsNode: cPacketType 1, iRequestId 2,
/// function `note`, empty context and status.
///
/// Source: encoded by TarsNode, `@tars/rpc` 2.0.15's request composer
/// (`core/rpc-tars/tars-client.js`) on `@tars/stream` 2.0.3, by
/// `tests/interop/tars/node/fixtures.js` (`cd tests/interop/tars/node &&
/// node fixtures.js`, Node 20).
pub const TARS_NODE_REQUEST_ONEWAY: [u8; 57] = hex!(
    "00 00 00 39 10 01 20 01 3c 40 02 56 18 42 61 74 6f 6e 2e 45 63 68 6f 53 65 72 76 65 72 2e 45 63"
    "68 6f 4f 62 6a 66 04 6e 6f 74 65 7d 00 00 03 16 01 6e 81 3a 98 98 0c a8 0c"
);

/// A TUP response from TarsGo's server: a RequestPacket (iVersion 3,
/// iRequestId 9) with empty servant and function names and no result code
/// (TarsGo's `req2Byte` copies neither), the result `"a|hi"` in a
/// UniAttribute under `""` and `tars_ret`.
///
/// Source: encoded by TarsGo v1.4.5 (`github.com/TarsCloud/TarsGo`, its
/// tars2go-generated `requestf` structs and `protocol.TarsProtocol`), by
/// `tests/interop/tars/fixtures` (`cd tests/interop/tars && go run
/// ./fixtures`, Go 1.26; TarsGo writes a UniAttribute's map in Go's map
/// order, so a rerun may swap its two entries).
pub const TARS_GO_TUP_RESPONSE: [u8; 58] = hex!(
    "00 00 00 3a 10 03 2c 3c 40 09 56 00 66 00 7d 00 00 23 08 00 02 06 00 1d 00 00 06 06 04 61 7c 68"
    "69 06 08 74 61 72 73 5f 72 65 74 1d 00 00 06 06 04 61 7c 68 69 8c 98 0c a8 0c"
);

/// A TUP response from TarsNode's server: a RequestPacket (iVersion 3,
/// iRequestId 7) with the request's servant and function,
/// `STATUS_RESULT_CODE` 0 in status, the result in a UniAttribute.
///
/// Source: encoded by TarsNode, `@tars/rpc` 2.0.15's server composer
/// (`core/rpc-tars/tars-server.js`, `composeTUP`) on `@tars/stream` 2.0.3,
/// by `tests/interop/tars/node/fixtures.js` (`cd tests/interop/tars/node &&
/// node fixtures.js`, Node 20).
pub const TARS_NODE_TUP_RESPONSE: [u8; 132] = hex!(
    "00 00 00 84 10 03 2c 3c 40 07 56 18 42 61 74 6f 6e 2e 45 63 68 6f 53 65 72 76 65 72 2e 45 63 68"
    "6f 4f 62 6a 66 04 65 63 68 6f 7d 00 00 23 08 00 02 06 00 1d 00 00 06 06 04 61 7c 68 69 06 08 74"
    "61 72 73 5f 72 65 74 1d 00 00 06 06 04 61 7c 68 69 8c 98 0c a8 00 02 06 12 53 54 41 54 55 53 5f"
    "52 45 53 55 4c 54 5f 43 4f 44 45 16 01 30 06 12 53 54 41 54 55 53 5f 52 45 53 55 4c 54 5f 44 45"
    "53 43 16 00"
);

/// What baton's hijack must write for a timed-out TUP call with id 8 to
/// `Baton.EchoServer.EchoObj.echo`: TarsNode's TUP response with
/// `STATUS_RESULT_CODE` -7 and `STATUS_RESULT_DESC`
/// `baton: upstream timeout`, an empty UniAttribute.
///
/// Source: encoded by TarsNode, `@tars/rpc` 2.0.15's server composer
/// (`core/rpc-tars/tars-server.js`, `composeTUP`) on `@tars/stream` 2.0.3,
/// by `tests/interop/tars/node/fixtures.js` (`cd tests/interop/tars/node &&
/// node fixtures.js`, Node 20).
pub const TARS_NODE_TUP_RESPONSE_INVOKE_TIMEOUT: [u8; 123] = hex!(
    "00 00 00 7b 10 03 2c 3c 40 08 56 18 42 61 74 6f 6e 2e 45 63 68 6f 53 65 72 76 65 72 2e 45 63 68"
    "6f 4f 62 6a 66 04 65 63 68 6f 7d 00 00 02 08 0c 8c 98 0c a8 00 02 06 12 53 54 41 54 55 53 5f 52"
    "45 53 55 4c 54 5f 43 4f 44 45 16 02 2d 37 06 12 53 54 41 54 55 53 5f 52 45 53 55 4c 54 5f 44 45"
    "53 43 16 17 62 61 74 6f 6e 3a 20 75 70 73 74 72 65 61 6d 20 74 69 6d 65 6f 75 74"
);

/// Every fixture with the protocol it belongs to, for corpus seeding and
/// table-driven tests.
pub const ALL: &[(&str, super::Protocol, &[u8])] = &[
    (
        "bolt_request_protobuf",
        super::Protocol::Bolt,
        &BOLT_REQUEST_PROTOBUF,
    ),
    (
        "bolt_response_protobuf",
        super::Protocol::Bolt,
        &BOLT_RESPONSE_PROTOBUF,
    ),
    (
        "bolt_response_server_exception",
        super::Protocol::Bolt,
        &BOLT_RESPONSE_SERVER_EXCEPTION,
    ),
    ("bolt_v2_response", super::Protocol::Bolt, &BOLT_V2_RESPONSE),
    (
        "bolt_heartbeat_request",
        super::Protocol::Bolt,
        &BOLT_HEARTBEAT_REQUEST,
    ),
    (
        "bolt_heartbeat_ack",
        super::Protocol::Bolt,
        &BOLT_HEARTBEAT_ACK,
    ),
    (
        "dubbo_request_notify_job",
        super::Protocol::Dubbo,
        &DUBBO_REQUEST_NOTIFY_JOB,
    ),
    (
        "dubbo_request_complex",
        super::Protocol::Dubbo,
        &DUBBO_REQUEST_COMPLEX,
    ),
    (
        "dubbo_response_int",
        super::Protocol::Dubbo,
        &DUBBO_RESPONSE_INT,
    ),
    (
        "dubbo_heartbeat_request",
        super::Protocol::Dubbo,
        &DUBBO_HEARTBEAT_REQUEST,
    ),
    (
        "dubbo_heartbeat_response",
        super::Protocol::Dubbo,
        &DUBBO_HEARTBEAT_RESPONSE,
    ),
    (
        "rocketmq_json_get_route",
        super::Protocol::RocketMq,
        &ROCKETMQ_JSON_GET_ROUTE,
    ),
    (
        "rocketmq_json_route_response",
        super::Protocol::RocketMq,
        &ROCKETMQ_JSON_ROUTE_RESPONSE,
    ),
    (
        "rocketmq_json_send_v2_java",
        super::Protocol::RocketMq,
        &ROCKETMQ_JSON_SEND_V2_JAVA,
    ),
    (
        "rocketmq_json_send_v2_dotnet_raw_control",
        super::Protocol::RocketMq,
        &ROCKETMQ_JSON_SEND_V2_DOTNET_RAW_CONTROL,
    ),
    (
        "rocketmq_json_send_v2_dotnet_pascal",
        super::Protocol::RocketMq,
        &ROCKETMQ_JSON_SEND_V2_DOTNET_PASCAL,
    ),
    (
        "rocketmq_json_heart_beat",
        super::Protocol::RocketMq,
        &ROCKETMQ_JSON_HEART_BEAT,
    ),
    (
        "rocketmq_binary_response",
        super::Protocol::RocketMq,
        &ROCKETMQ_BINARY_RESPONSE,
    ),
    (
        "rocketmq_binary_response_ext",
        super::Protocol::RocketMq,
        &ROCKETMQ_BINARY_RESPONSE_EXT,
    ),
    (
        "rocketmq_binary_request",
        super::Protocol::RocketMq,
        &ROCKETMQ_BINARY_REQUEST,
    ),
    (
        "tars_request_echo",
        super::Protocol::Tars,
        &TARS_REQUEST_ECHO,
    ),
    (
        "tars_request_oneway_zero_id",
        super::Protocol::Tars,
        &TARS_REQUEST_ONEWAY_ZERO_ID,
    ),
    (
        "tars_request_long_context",
        super::Protocol::Tars,
        &TARS_REQUEST_LONG_CONTEXT,
    ),
    (
        "tars_response_echo",
        super::Protocol::Tars,
        &TARS_RESPONSE_ECHO,
    ),
    (
        "tars_response_no_func",
        super::Protocol::Tars,
        &TARS_RESPONSE_NO_FUNC,
    ),
    ("tars_request_tup", super::Protocol::Tars, &TARS_REQUEST_TUP),
    (
        "tars_response_invoke_timeout",
        super::Protocol::Tars,
        &TARS_RESPONSE_INVOKE_TIMEOUT,
    ),
    (
        "tars_node_request_context",
        super::Protocol::Tars,
        &TARS_NODE_REQUEST_CONTEXT,
    ),
    (
        "tars_node_request_oneway",
        super::Protocol::Tars,
        &TARS_NODE_REQUEST_ONEWAY,
    ),
    (
        "tars_go_tup_response",
        super::Protocol::Tars,
        &TARS_GO_TUP_RESPONSE,
    ),
    (
        "tars_node_tup_response",
        super::Protocol::Tars,
        &TARS_NODE_TUP_RESPONSE,
    ),
    (
        "tars_node_tup_response_invoke_timeout",
        super::Protocol::Tars,
        &TARS_NODE_TUP_RESPONSE_INVOKE_TIMEOUT,
    ),
];
