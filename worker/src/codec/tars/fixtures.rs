//! TARS byte fixtures, for this codec's tests, the framework tests
//! and the fuzz seed corpus (through `Protocol::fixtures` and
//! [`crate::codec::fixtures::all`]). The rules for a fixture (a capture
//! from another implementation, cited, or built by hand from the
//! documented layout, and saying so) are in [`crate::codec::fixtures`].

use hex_literal::hex;

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

/// Every fixture of this protocol, by the name its fuzz seed files take.
pub const ALL: &[(&str, &[u8])] = &[
    ("tars_request_echo", &TARS_REQUEST_ECHO),
    ("tars_request_oneway_zero_id", &TARS_REQUEST_ONEWAY_ZERO_ID),
    ("tars_request_long_context", &TARS_REQUEST_LONG_CONTEXT),
    ("tars_response_echo", &TARS_RESPONSE_ECHO),
    ("tars_response_no_func", &TARS_RESPONSE_NO_FUNC),
    ("tars_request_tup", &TARS_REQUEST_TUP),
    (
        "tars_response_invoke_timeout",
        &TARS_RESPONSE_INVOKE_TIMEOUT,
    ),
    ("tars_node_request_context", &TARS_NODE_REQUEST_CONTEXT),
    ("tars_node_request_oneway", &TARS_NODE_REQUEST_ONEWAY),
    ("tars_go_tup_response", &TARS_GO_TUP_RESPONSE),
    ("tars_node_tup_response", &TARS_NODE_TUP_RESPONSE),
    (
        "tars_node_tup_response_invoke_timeout",
        &TARS_NODE_TUP_RESPONSE_INVOKE_TIMEOUT,
    ),
];
