//! The HTTP/1.1 request-smuggling corpus (issue 12): each case is the
//! bytes a client sends on a fresh connection, and what baton must make
//! of them. `tests/tests/smuggling.rs` sends every case through baton,
//! nginx and HAProxy in front of a recording upstream; the fuzz smoke
//! runner (`fuzz/src/smoke.rs`, which includes this file by path: it is
//! plain data, with no dependency) seeds its HTTP/1 head and chunked
//! targets with them.
//!
//! Every case refers to the same setup: a route that answers `/admin/*`
//! with 403 itself, everything else forwarded to one HTTP/1.1 upstream.
//! `SMUGGLED` is the request an attacker wants the upstream to see.

/// What baton must do with a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// baton answers `status` itself and nothing reaches the upstream;
    /// `reason` is the label it is counted under in
    /// `baton_http_requests_rejected_total` (`"route"`: answered by a
    /// route, not counted there).
    Refused { status: u16, reason: &'static str },
    /// Exactly one request reaches the upstream, with this method, target
    /// and body (the bytes the client meant, unframed), `host` as its Host
    /// when given, and none of the `absent` fields. Requests the client
    /// pipelined after it are baton's to route (`/admin/` gets its 403).
    Forwarded {
        method: &'static str,
        target: &'static str,
        host: Option<&'static str>,
        body: &'static [u8],
        absent: &'static [&'static str],
    },
    /// The client never finishes its message: no request reaches the
    /// upstream complete, and the client gets no answer from it.
    Incomplete,
}

/// One case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short and unique: a file name in the fuzz corpus.
    pub name: &'static str,
    /// The family (CL.TE, TE.TE, chunk lines...).
    pub family: &'static str,
    /// The bytes, written in this many writes.
    pub parts: Vec<Vec<u8>>,
    pub expect: Expect,
}

impl Case {
    /// All the bytes, as one.
    pub fn bytes(&self) -> Vec<u8> {
        self.parts.concat()
    }
}

/// The request an attacker wants to smuggle (39 bytes).
pub const SMUGGLED: &[u8] = b"GET /admin/secret HTTP/1.1\r\nHost: x\r\n\r\n";

const fn refused(status: u16, reason: &'static str) -> Expect {
    Expect::Refused { status, reason }
}

const fn forwarded(method: &'static str, target: &'static str, body: &'static [u8]) -> Expect {
    Expect::Forwarded {
        method,
        target,
        host: None,
        body,
        absent: &[],
    }
}

fn case(name: &'static str, family: &'static str, bytes: &[u8], expect: Expect) -> Case {
    Case {
        name,
        family,
        parts: vec![bytes.to_vec()],
        expect,
    }
}

/// A chunked POST to `/public` with `fields` (CRLF-terminated lines) and
/// then `body` as it is.
fn chunked_post(fields: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("POST /public HTTP/1.1\r\nHost: x\r\n{fields}\r\n").into_bytes();
    out.extend_from_slice(body);
    out
}

/// The well-formed chunked body of `hello`.
const HELLO_CHUNKED: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";

/// Every case.
pub fn cases() -> Vec<Case> {
    let te = |name, te_line: &str, expect| {
        case(
            name,
            "TE.TE",
            &chunked_post(&format!("{te_line}\r\n"), HELLO_CHUNKED),
            expect,
        )
    };
    let chunk = |name, body: &[u8], expect| {
        case(
            name,
            "chunk lines",
            &chunked_post("Transfer-Encoding: chunked\r\n", body),
            expect,
        )
    };
    let with_smuggled = |head: &[u8]| [head, SMUGGLED].concat();
    let mut long_extension = b"5;".to_vec();
    long_extension.extend(std::iter::repeat_n(b'a', 5000));
    long_extension.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let hello = forwarded("POST", "/public", b"hello");
    vec![
        // === the shapes of the issue ===
        case(
            "issue-connection-content-length",
            "issue",
            &with_smuggled(b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 39\r\nConnection: Content-Length\r\n\r\n"),
            refused(400, "connection_option"),
        ),
        // As the issue wrote it: 37 bytes of body, the smuggled head's
        // last CRLF outside it.
        case(
            "issue-connection-content-length-37",
            "issue",
            &with_smuggled(b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\nConnection: Content-Length\r\n\r\n"),
            refused(400, "connection_option"),
        ),
        case(
            "issue-connection-host",
            "issue",
            b"GET /public HTTP/1.1\r\nHost: x\r\nConnection: Host\r\n\r\n",
            refused(400, "connection_option"),
        ),
        case(
            "issue-connection-transfer-encoding",
            "issue",
            &chunked_post(
                "Transfer-Encoding: chunked\r\nConnection: keep-alive, Transfer-Encoding\r\n",
                HELLO_CHUNKED,
            ),
            refused(400, "connection_option"),
        ),
        case(
            "issue-http10-transfer-encoding",
            "issue",
            b"POST /public HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            refused(400, "http10_transfer_encoding"),
        ),
        case(
            "issue-get-with-a-body",
            "issue",
            b"GET /public HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\n\r\nGET /admin/secret HTTP/1.1\r\nHost: x\r\n",
            forwarded("GET", "/public", &SMUGGLED[..37]),
        ),
        Case {
            name: "issue-get-with-a-body-in-two-writes",
            family: "issue",
            parts: vec![
                b"GET /public HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\n\r\n".to_vec(),
                SMUGGLED[..35].to_vec(),
                SMUGGLED[35..37].to_vec(),
            ],
            expect: forwarded("GET", "/public", &SMUGGLED[..37]),
        },
        // === CL.TE and TE.CL, lengths ===
        case(
            "cl-te",
            "CL.TE",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            refused(400, "content_length_and_transfer_encoding"),
        ),
        case(
            "te-cl",
            "TE.CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
            refused(400, "content_length_and_transfer_encoding"),
        ),
        case(
            "te-cl-zero",
            "TE.CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            refused(400, "content_length_and_transfer_encoding"),
        ),
        case(
            "cl-cl-different",
            "CL.CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            refused(400, "duplicate_content_length"),
        ),
        case(
            "cl-cl-same",
            "CL.CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            refused(400, "duplicate_content_length"),
        ),
        case(
            "cl-comma-list",
            "CL.CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
            refused(400, "bad_content_length"),
        ),
        case(
            "cl-plus-sign",
            "CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
            refused(400, "bad_content_length"),
        ),
        case(
            "cl-negative",
            "CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello",
            refused(400, "bad_content_length"),
        ),
        case(
            "cl-hex",
            "CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello",
            refused(400, "bad_content_length"),
        ),
        case(
            "cl-space-inside",
            "CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nhello",
            refused(400, "bad_content_length"),
        ),
        case(
            "cl-overflow",
            "CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\nhello",
            refused(400, "bad_content_length"),
        ),
        case(
            "cl-leading-zeros",
            "CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 0005\r\n\r\nhello",
            hello.clone(),
        ),
        case(
            "cl-whitespace-around",
            "CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: \t 5 \t\r\n\r\nhello",
            hello.clone(),
        ),
        case(
            "cl-space-before-colon",
            "CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
            refused(400, "malformed"),
        ),
        case(
            "cl-obs-fold",
            "CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 5\r\n\r\nhello",
            refused(400, "malformed"),
        ),
        case(
            "cl-underscore",
            "CL",
            b"POST /public HTTP/1.1\r\nHost: x\r\nContent_Length: 5\r\n\r\nhello",
            refused(400, "malformed"),
        ),
        // === TE.TE: obfuscated Transfer-Encoding ===
        te("te-uppercase-value", "Transfer-Encoding: CHUNKED", hello.clone()),
        te("te-mixed-case-name", "transfer-ENCODING: chunked", hello.clone()),
        te("te-tab-before-value", "Transfer-Encoding:\tchunked", hello.clone()),
        te("te-whitespace-after-value", "Transfer-Encoding: chunked \t", hello.clone()),
        te("te-empty-list-element", "Transfer-Encoding: , chunked", hello.clone()),
        te(
            "te-space-before-colon",
            "Transfer-Encoding : chunked",
            refused(400, "malformed"),
        ),
        te(
            "te-obs-fold-value",
            "Transfer-Encoding:\r\n chunked",
            refused(400, "malformed"),
        ),
        te(
            "te-obs-fold-into-previous",
            "X-Padding: a\r\n Transfer-Encoding: chunked",
            refused(400, "malformed"),
        ),
        case(
            "te-whitespace-before-first-field",
            "TE.TE",
            b"POST /public HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: x\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            refused(400, "malformed"),
        ),
        te(
            "te-vertical-tab",
            "Transfer-Encoding: \x0bchunked",
            refused(400, "malformed"),
        ),
        te(
            "te-underscore",
            "Transfer_Encoding: chunked",
            refused(400, "malformed"),
        ),
        te(
            "te-xchunked",
            "Transfer-Encoding: xchunked",
            refused(400, "bad_transfer_encoding"),
        ),
        te(
            "te-quoted",
            "Transfer-Encoding: \"chunked\"",
            refused(400, "bad_transfer_encoding"),
        ),
        te(
            "te-chunked-not-last",
            "Transfer-Encoding: chunked, identity",
            refused(400, "bad_transfer_encoding"),
        ),
        te(
            "te-comma-joined-twice",
            "Transfer-Encoding: chunked, chunked",
            refused(400, "bad_transfer_encoding"),
        ),
        te(
            "te-two-fields",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            refused(400, "bad_transfer_encoding"),
        ),
        te(
            "te-second-field-identity",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
            refused(400, "bad_transfer_encoding"),
        ),
        te(
            "te-gzip-then-chunked",
            "Transfer-Encoding: gzip, chunked",
            refused(501, "unsupported_transfer_encoding"),
        ),
        case(
            "te-bare-lf-head",
            "bare LF/CR",
            b"POST /public HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n5\r\nhello\r\n0\r\n\r\n",
            hello.clone(),
        ),
        te(
            "bare-lf-splits-a-field",
            "X-Padding: a\nTransfer-Encoding: chunked",
            hello.clone(),
        ),
        te(
            "bare-cr-in-a-field",
            "X-Padding: a\rTransfer-Encoding: chunked",
            refused(400, "malformed"),
        ),
        // === chunk lines ===
        chunk(
            "chunk-size-bare-lf",
            b"5\nhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-size-bare-cr",
            b"5\rhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-data-bare-lf",
            b"5\r\nhello\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-last-bare-lf",
            b"5\r\nhello\r\n0\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk("chunk-extension", b"5;a=b\r\nhello\r\n0;c\r\n\r\n", hello.clone()),
        chunk(
            "chunk-extension-quoted",
            b"5;a=\"x;y\"\r\nhello\r\n0\r\n\r\n",
            hello.clone(),
        ),
        chunk(
            "chunk-extension-bare-lf",
            b"5;a\nhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-extension-bare-cr",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-extension-oversized",
            &long_extension,
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-size-trailing-space",
            b"5 \r\nhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-size-leading-space",
            b" 5\r\nhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-size-leading-zeros",
            b"0000000005\r\nhello\r\n0\r\n\r\n",
            hello.clone(),
        ),
        chunk(
            "chunk-size-17-digits",
            b"00000000000000005\r\nhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-size-overflow",
            b"10000000000000005\r\nhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-size-32-bit-wrap",
            b"100000005\r\nhello\r\n0\r\n\r\n",
            Expect::Incomplete,
        ),
        chunk(
            "chunk-size-negative",
            b"-5\r\nhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-size-0x",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-data-longer-than-size",
            b"3\r\nhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-data-shorter-than-size",
            b"7\r\nhello\r\n0\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-trailer",
            b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
            hello.clone(),
        ),
        chunk(
            "chunk-trailer-content-length",
            b"5\r\nhello\r\n0\r\nContent-Length: 44\r\n\r\n",
            hello.clone(),
        ),
        chunk(
            "chunk-trailer-bare-lf",
            b"5\r\nhello\r\n0\r\nX-Trailer: 1\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-trailer-obs-fold",
            b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n 2\r\n\r\n",
            refused(400, "bad_chunk"),
        ),
        chunk(
            "chunk-request-after-the-last-chunk",
            &[HELLO_CHUNKED, SMUGGLED].concat(),
            hello.clone(),
        ),
        // === Expect: 100-continue ===
        case(
            "expect-on-a-get-without-body",
            "Expect",
            b"GET /public HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            forwarded("GET", "/public", b""),
        ),
        case(
            "expect-body-sent-at-once-then-a-request",
            "Expect",
            &with_smuggled(b"POST /public HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"),
            hello.clone(),
        ),
        case(
            "expect-unknown-expectation",
            "Expect",
            b"POST /public HTTP/1.1\r\nHost: x\r\nExpect: 100-continuex\r\nContent-Length: 5\r\n\r\nhello",
            hello.clone(),
        ),
        case(
            "expect-in-http10",
            "Expect",
            b"POST /public HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
            hello.clone(),
        ),
        // === Upgrade ===
        case(
            "upgrade-h2c-with-a-body",
            "Upgrade",
            b"POST /public HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello",
            Expect::Forwarded {
                method: "POST",
                target: "/public",
                host: None,
                body: b"hello",
                absent: &["upgrade", "http2-settings"],
            },
        ),
        case(
            "upgrade-h2c-then-a-request",
            "Upgrade",
            &with_smuggled(b"GET /public HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"),
            Expect::Forwarded {
                method: "GET",
                target: "/public",
                host: None,
                body: b"",
                absent: &["upgrade", "http2-settings"],
            },
        ),
        case(
            "upgrade-websocket-with-a-body",
            "Upgrade",
            b"POST /public HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello",
            hello.clone(),
        ),
        // === absolute form and Host ===
        case(
            "absolute-form-admin-with-a-public-host",
            "absolute-form",
            b"GET http://x/admin/secret HTTP/1.1\r\nHost: public\r\n\r\n",
            refused(403, "route"),
        ),
        case(
            "absolute-form-host-replaces-host-field",
            "absolute-form",
            b"GET http://x/public HTTP/1.1\r\nHost: y\r\n\r\n",
            Expect::Forwarded {
                method: "GET",
                target: "/public",
                host: Some("x"),
                body: b"",
                absent: &[],
            },
        ),
        case(
            "absolute-form-userinfo",
            "absolute-form",
            b"GET http://y@x/public HTTP/1.1\r\nHost: x\r\n\r\n",
            refused(400, "target"),
        ),
        case(
            "absolute-form-other-scheme",
            "absolute-form",
            b"GET ftp://x/admin/secret HTTP/1.1\r\nHost: x\r\n\r\n",
            refused(400, "target"),
        ),
        case(
            "absolute-form-empty-host",
            "absolute-form",
            b"GET http:///public HTTP/1.1\r\nHost: x\r\n\r\n",
            refused(400, "target"),
        ),
        case(
            "target-without-slash",
            "absolute-form",
            b"GET admin/secret HTTP/1.1\r\nHost: x\r\n\r\n",
            refused(400, "target"),
        ),
        case(
            "host-missing",
            "Host",
            b"GET /public HTTP/1.1\r\n\r\n",
            refused(400, "host"),
        ),
        case(
            "host-twice",
            "Host",
            b"GET /public HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            refused(400, "host"),
        ),
        case(
            "host-with-userinfo",
            "Host",
            b"GET /public HTTP/1.1\r\nHost: y@x\r\n\r\n",
            refused(400, "host"),
        ),
        case(
            "host-with-a-space",
            "Host",
            b"GET /public HTTP/1.1\r\nHost: x y\r\n\r\n",
            refused(400, "host"),
        ),
        case(
            "host-empty",
            "Host",
            b"GET /public HTTP/1.1\r\nHost:\r\n\r\n",
            Expect::Forwarded {
                method: "GET",
                target: "/public",
                host: Some(""),
                body: b"",
                absent: &[],
            },
        ),
        // === HTTP/1.0 ===
        case(
            "http10-keep-alive-with-length",
            "HTTP/1.0",
            b"POST /public HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello",
            hello.clone(),
        ),
        case(
            "http10-keep-alive-unframed-body",
            "HTTP/1.0",
            b"POST /public HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /admin/secret HTTP/1.0\r\n\r\n",
            forwarded("POST", "/public", b""),
        ),
        case(
            "http10-transfer-encoding-and-length",
            "HTTP/1.0",
            b"POST /public HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
            refused(400, "http10_transfer_encoding"),
        ),
        case(
            "http10-without-host",
            "HTTP/1.0",
            b"GET /public HTTP/1.0\r\n\r\n",
            Expect::Forwarded {
                method: "GET",
                target: "/public",
                host: Some(""),
                body: b"",
                absent: &[],
            },
        ),
        // === head syntax ===
        case(
            "nul-in-a-value",
            "head syntax",
            b"GET /public HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
            refused(400, "malformed"),
        ),
        case(
            "field-without-colon",
            "head syntax",
            b"GET /public HTTP/1.1\r\nHost: x\r\nX-Line-Without-Colon\r\n\r\n",
            refused(400, "malformed"),
        ),
        case(
            "space-in-a-field-name",
            "head syntax",
            b"GET /public HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
            refused(400, "malformed"),
        ),
        case(
            "two-spaces-in-the-request-line",
            "head syntax",
            b"GET  /public HTTP/1.1\r\nHost: x\r\n\r\n",
            refused(400, "malformed"),
        ),
        case(
            "version-1-2",
            "head syntax",
            b"GET /public HTTP/1.2\r\nHost: x\r\n\r\n",
            refused(505, "version"),
        ),
        case(
            "empty-lines-before-the-request",
            "head syntax",
            b"\r\n\r\nGET /public HTTP/1.1\r\nHost: x\r\n\r\n",
            forwarded("GET", "/public", b""),
        ),
    ]
}
