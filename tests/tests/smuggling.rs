//! HTTP request smuggling (issue 12): the corpus of
//! `baton_tests::smuggle_corpus` sent to baton, nginx and HAProxy, each in
//! front of its own recording upstream (`baton_tests::recording`: a strict
//! HTTP/1.1 parser that logs every request it frames, and keeps parsing
//! after the first one on a connection, so a smuggled request shows).
//!
//! Each case is written on a fresh connection, which the client then
//! half-closes; the proxy answers what it read and closes. Once the client
//! has seen the end, the upstream settles (parses everything that reached
//! it) and closes its connections, so the next case starts clean. The
//! test asserts baton's outcome only — a 4xx (501/505 where RFC 9112 says
//! so) from baton with nothing forwarded, exactly one request upstream
//! whose body is what the client meant, or (one case) nothing complete
//! upstream — and records nginx's and HAProxy's, printed as a table and
//! written to `target/smuggling-corpus.md`.
//!
//! # Where baton differs (nginx 1.22, HAProxy 2.6 as packaged by Debian 12)
//!
//! The table the test prints is the record, case by case. No case is
//! smuggled past any of the three (before issue 12, baton forwarded the
//! `Connection`-stripped bodies, an `ftp://` target past the `/admin/`
//! route, `h2c` upgrades, and HTTP/1.1 requests without a Host). Where
//! they differ:
//!
//! * `Connection` naming `Content-Length`, `Transfer-Encoding` or `Host`:
//!   baton 400; nginx and HAProxy forward the request with the field
//!   intact (they act on no connection option but close, keep-alive and
//!   upgrade, so they strip nothing).
//! * `Content-Length` with `Transfer-Encoding`: baton and nginx 400;
//!   HAProxy forwards it chunked (TE wins, CL removed, RFC 9112 §6.3).
//!   Two equal lengths or `5, 5`: baton and nginx 400, HAProxy merges them
//!   (RFC 9110 §8.6 allows it). obs-fold: baton and nginx 400, HAProxy
//!   unfolds and forwards.
//! * `Transfer_Encoding` / `Content_Length`: baton 400; nginx drops the
//!   field, HAProxy forwards it; both then send the body unframed, which
//!   the upstream reads as a second, broken request (a backend that folds
//!   `_` into `-` would frame by it instead).
//! * `Transfer-Encoding` spelled with a tab, trailing whitespace or an
//!   empty list element: baton and HAProxy take it, nginx 501 (exactly
//!   `chunked` only). `chunked` not last / unknown: baton and HAProxy
//!   400 (RFC 9112 §6.3 item 4), nginx 501. `gzip, chunked`: baton and
//!   nginx 501, HAProxy 422.
//! * Chunk lines with a bare LF, a trailing space, 17 hex digits, a 5 KB
//!   extension, trailers with a bare LF or obs-fold: baton 400; nginx and
//!   HAProxy accept them (and re-frame the body, so the upstream is safe).
//!   A chunk size over 32 bits: nginx 413 (its body limit); baton and
//!   HAProxy forward re-framed pieces and the request ends incomplete when
//!   the client goes.
//! * Absolute form: HAProxy answers 400 when Host differs from the
//!   target's authority (baton and nginx route by the authority), and
//!   forwards targets with userinfo or an empty host as they are (baton
//!   and nginx 400); an `ftp://` target: baton 400, nginx and HAProxy
//!   route it by path (403 here).
//! * Host: with userinfo, baton 400, nginx and HAProxy forward it; with a
//!   space, baton and nginx 400; empty, nginx 400; missing, HAProxy
//!   forwards and the upstream refuses. HTTP/1.0 without Host: baton sends
//!   an empty Host (HTTP/1.1 needs one), nginx none (`$host` is empty) and
//!   the strict upstream refuses it.
//! * Head syntax: two spaces in the request line or `HTTP/1.2`: baton
//!   400/505, nginx and HAProxy accept; a field line without a colon:
//!   baton and HAProxy 400, nginx skips the line.
//! * `Expect: 100-continue`: nginx answers 100 itself even on a GET
//!   without a body; to an HTTP/1.0 client HAProxy relays the upstream's
//!   100, baton does not (RFC 9110 §15.2).
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use baton_tests::admin::http;
use baton_tests::h2_raw::{self, H2Client, StreamEnd};
use baton_tests::haproxy::Haproxy;
use baton_tests::http_peer::Nginx;
use baton_tests::recording::{Event, H2RecordingUpstream, Recorded, RecordingUpstream, Responder};
use baton_tests::smuggle_corpus::{Case, Expect, cases};
use baton_tests::{Baton, PATIENCE, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long the client waits for nginx or HAProxy to close a case's
/// connection: both answer and close at once on a half-closed
/// connection; a case that leaves one waiting (for a body it thinks is
/// coming) is recorded as such rather than holding the test up for long.
const THIRD_PARTY_WAIT: Duration = Duration::from_secs(3);

/// baton's config: `/admin/` answered 403 by a route, the rest to `up`.
fn baton_config(up: SocketAddr) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"5s\"\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\ncluster = \"up\"\n\n\
         [[listeners.routes]]\npath_prefix = \"/admin/\"\ndirect = {{ status = 403, body = \"forbidden\" }}\n\n\
         [[clusters]]\nname = \"up\"\nendpoints = [\"{up}\"]\nconnect_timeout = \"2s\"\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n"
    )
}

/// nginx as commonly deployed in front of an HTTP/1.1 backend, with the
/// same `/admin/` rule; it keeps serving a request whose client
/// half-closed (`proxy_ignore_client_abort`), as baton and HAProxy do.
fn nginx(up: SocketAddr) -> Nginx {
    Nginx::start(&format!(
        "    location /admin/ {{ return 403; }}\n\
         \x20   location / {{\n\
         \x20     proxy_pass http://{up};\n\
         \x20     proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n\
         \x20     proxy_set_header Host $host;\n\
         \x20     proxy_ignore_client_abort on;\n\
         \x20   }}"
    ))
}

fn haproxy(up: SocketAddr) -> Haproxy {
    Haproxy::start(
        "5s",
        "    http-request deny deny_status 403 if { path_beg /admin/ }\n    default_backend up",
        &format!("backend up\n    server up {up}\n"),
    )
}

// === one case ===

/// A response as the client read it.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    /// It came from the upstream (it carries `X-Recorded`).
    from_upstream: bool,
    body: Vec<u8>,
    /// Its body was all there.
    complete: bool,
}

/// How the connection ended for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Closed,
    Reset,
    /// Still open when the client stopped waiting.
    Open,
}

#[derive(Debug, Clone)]
struct Outcome {
    answers: Vec<Answer>,
    end: End,
    events: Vec<Event>,
}

impl Outcome {
    fn requests(&self) -> Vec<&Recorded> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Request(r) => Some(r),
                _ => None,
            })
            .collect()
    }
}

/// Sends `case` to `proxy` on a new connection and collects what happened
/// at both ends.
async fn run_case(
    proxy: SocketAddr,
    up: &RecordingUpstream,
    case: &Case,
    wait: Duration,
) -> Outcome {
    let before = up.events().len();
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.set_nodelay(true).unwrap();
    for part in &case.parts {
        // A proxy may close early (a refusal): the rest is not needed.
        if stream.write_all(part).await.is_err() {
            break;
        }
    }
    let _ = stream.shutdown().await;
    let mut bytes = Vec::new();
    let end = timeout(wait, async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return End::Closed,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(_) => return End::Reset,
            }
        }
    })
    .await
    .unwrap_or(End::Open);
    drop(stream);
    up.close_all().await;
    let events = up.events()[before..].to_vec();
    Outcome {
        answers: answers(&bytes),
        end,
        events,
    }
}

/// The responses in `bytes`, leniently: heads, and bodies by
/// Content-Length or chunks (anything else runs to the end).
fn answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
        bytes = &bytes[end + 4..];
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let field = |name: &str| {
            head.split("\r\n")
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let mut answer = Answer {
            status,
            from_upstream: field("x-recorded:").is_some(),
            body: Vec::new(),
            complete: true,
        };
        if (100..200).contains(&status) || status == 204 || status == 304 {
            out.push(answer);
            continue;
        }
        if field("transfer-encoding:").is_some_and(|v| v.ends_with("chunked")) {
            answer.complete = false;
            while let Some(eol) = bytes.windows(2).position(|w| w == b"\r\n") {
                let size_text = String::from_utf8_lossy(&bytes[..eol]).into_owned();
                let Ok(size) =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                else {
                    break;
                };
                bytes = &bytes[eol + 2..];
                if size == 0 {
                    let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else {
                        break;
                    };
                    bytes = &bytes[end + 2..];
                    answer.complete = true;
                    break;
                }
                if bytes.len() < size + 2 {
                    answer
                        .body
                        .extend_from_slice(&bytes[..size.min(bytes.len())]);
                    bytes = &[];
                    break;
                }
                answer.body.extend_from_slice(&bytes[..size]);
                bytes = &bytes[size + 2..];
            }
        } else {
            let length = field("content-length:").and_then(|v| v.parse::<usize>().ok());
            let take = length.unwrap_or(bytes.len()).min(bytes.len());
            answer.complete = length.is_none_or(|n| n == take);
            answer.body = bytes[..take].to_vec();
            bytes = &bytes[take..];
        }
        out.push(answer);
    }
    out
}

// === verdicts ===

/// One line for the table: what the client got, then what the upstream
/// saw.
fn describe(o: &Outcome) -> String {
    let statuses: Vec<String> = o
        .answers
        .iter()
        .map(|a| format!("{}{}", a.status, if a.from_upstream { "u" } else { "" }))
        .collect();
    let client = if statuses.is_empty() {
        "no answer".to_string()
    } else {
        statuses.join(",")
    };
    let end = match o.end {
        End::Closed => "",
        End::Reset => ", reset",
        End::Open => ", left open",
    };
    let mut upstream = Vec::new();
    for event in &o.events {
        upstream.push(match event {
            Event::Request(r) => format!("{} {} [{}]", r.method, r.target, r.body.len()),
            Event::Refused { reason, .. } => format!("refused: {reason}"),
            Event::Incomplete { what, .. } => format!("incomplete: {what}"),
        });
    }
    let verdict = verdict(o);
    if upstream.is_empty() {
        format!("{verdict}: {client}{end}")
    } else {
        format!("{verdict}: {client}{end} ⇐ {}", upstream.join(" + "))
    }
}

/// The gist: was anything smuggled?
fn verdict(o: &Outcome) -> &'static str {
    let requests = o.requests();
    let smuggled = requests.len() > 1 || requests.iter().any(|r| r.target.contains("/admin/"));
    if smuggled {
        "SMUGGLED"
    } else if requests.len() == 1 {
        "forwarded"
    } else if o.events.iter().any(|e| matches!(e, Event::Refused { .. })) {
        "upstream refused"
    } else if !o.events.is_empty() {
        "incomplete"
    } else {
        "refused"
    }
}

/// baton's outcome against the case's expectation: `Err(why)` if wrong.
fn check_baton(case: &Case, o: &Outcome) -> Result<(), String> {
    let requests = o.requests();
    // Interim answers (100 Continue) are relayed; the final ones count.
    let finals: Vec<&Answer> = o
        .answers
        .iter()
        .filter(|a| !(100..200).contains(&a.status))
        .collect();
    let first = finals.first().copied();
    match &case.expect {
        Expect::Refused { status, .. } => {
            if !o.events.is_empty() {
                return Err(format!("reached the upstream: {:?}", o.events));
            }
            match first {
                Some(a) if a.status == *status && !a.from_upstream => {}
                _ => return Err(format!("wanted baton's {status}, got {:?}", o.answers)),
            }
            if finals.len() != 1 || o.end == End::Open {
                return Err(format!(
                    "one answer, then the connection closed: {:?}, {:?}",
                    o.answers, o.end
                ));
            }
        }
        Expect::Forwarded {
            method,
            target,
            host,
            body,
            absent,
        } => {
            let [r] = requests.as_slice() else {
                return Err(format!("wanted one request upstream, got {:?}", o.events));
            };
            if o.events.len() != 1 {
                return Err(format!("more than the request upstream: {:?}", o.events));
            }
            if (r.method.as_str(), r.target.as_str(), r.body.as_slice())
                != (*method, *target, *body)
            {
                return Err(format!(
                    "wanted {method} {target} {:?}, upstream got {} {} {:?}",
                    String::from_utf8_lossy(body),
                    r.method,
                    r.target,
                    String::from_utf8_lossy(&r.body)
                ));
            }
            if let Some(host) = host
                && r.header("host") != Some(*host)
            {
                return Err(format!(
                    "wanted Host {host:?}, upstream got {:?}",
                    r.header("host")
                ));
            }
            if let Some(field) = absent.iter().find(|f| r.has(f)) {
                return Err(format!("{field} was forwarded: {:?}", r.headers));
            }
            if !first.is_some_and(|a| a.status == 200 && a.from_upstream) {
                return Err(format!(
                    "the upstream's answer did not come first: {:?}",
                    o.answers
                ));
            }
            // Anything pipelined after it is baton's to answer (the
            // corpus only pipelines requests to /admin/).
            if let Some(extra) = finals[1..]
                .iter()
                .find(|a| a.from_upstream || a.status != 403)
            {
                return Err(format!(
                    "a second answer that is not baton's 403: {extra:?}"
                ));
            }
        }
        Expect::Incomplete => {
            if !requests.is_empty() {
                return Err(format!("a request completed upstream: {:?}", o.events));
            }
            if o.answers.iter().any(|a| a.from_upstream) || o.end == End::Open {
                return Err(format!("{:?}, {:?}", o.answers, o.end));
            }
        }
    }
    Ok(())
}

/// Where the table goes: `target/smuggling-corpus.md` (beside the
/// profile directory the test runs from).
fn table_path() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test>
    exe.ancestors().nth(3).unwrap().join("smuggling-corpus.md")
}

/// Every corpus case through baton, nginx and HAProxy; baton's outcome
/// asserted, all three tabulated; each refusal counted in
/// `baton_http_requests_rejected_total` under its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_through_baton_nginx_and_haproxy() {
    let cases = cases();
    let names: std::collections::HashSet<_> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names are unique");

    let baton_up = RecordingUpstream::start().await;
    let baton = Baton::start(&baton_config(baton_up.addr));
    let mut baton_outcomes = Vec::new();
    for case in &cases {
        baton_outcomes.push(run_case(baton.addr("web"), &baton_up, case, PATIENCE).await);
    }

    let nginx_up = RecordingUpstream::start().await;
    let nginx = nginx(nginx_up.addr);
    let mut nginx_outcomes = Vec::new();
    for case in &cases {
        nginx_outcomes.push(run_case(nginx.addr, &nginx_up, case, THIRD_PARTY_WAIT).await);
    }
    drop(nginx);

    let haproxy_up = RecordingUpstream::start().await;
    let haproxy = haproxy(haproxy_up.addr);
    let mut haproxy_outcomes = Vec::new();
    for case in &cases {
        haproxy_outcomes.push(run_case(haproxy.addr, &haproxy_up, case, THIRD_PARTY_WAIT).await);
    }
    drop(haproxy);

    let mut table =
        String::from("| case | family | baton | nginx | HAProxy |\n|---|---|---|---|---|\n");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let (b, n, h) = (&baton_outcomes[i], &nginx_outcomes[i], &haproxy_outcomes[i]);
        writeln!(
            table,
            "| {} | {} | {} | {} | {} |",
            case.name,
            case.family,
            describe(b),
            describe(n),
            describe(h)
        )
        .unwrap();
        if let Err(why) = check_baton(case, b) {
            failures.push(format!("{}: {why} ({})", case.name, describe(b)));
        }
    }
    let legend = "Cells: verdict: the statuses the client got (`u`: from the upstream; \
                  otherwise the proxy's own), then ⇐ what the upstream parsed \
                  (method target [body bytes]), or why it refused.\n\n";
    std::fs::write(table_path(), format!("{legend}{table}")).unwrap();
    eprintln!("{legend}{table}\n(written to {})", table_path().display());
    assert!(
        failures.is_empty(),
        "baton got these wrong:\n{}",
        failures.join("\n")
    );

    // Every refusal is counted under its reason.
    let admin = baton.admin_addr();
    let mut want: std::collections::BTreeMap<&str, f64> = Default::default();
    for case in &cases {
        if let Expect::Refused { reason, .. } = case.expect
            && reason != "route"
        {
            *want.entry(reason).or_default() += 1.0;
        }
    }
    let total: f64 = want.values().sum();
    let scrape = || http(admin, "GET", "/metrics").body;
    eventually("the refusals in /metrics", || {
        baton_tests::admin::sample(&scrape(), "baton_http_bad_requests_total{listener=\"web\"}")
            .is_some_and(|n| n >= total)
    });
    let scrape = scrape();
    let got: std::collections::BTreeMap<&str, f64> = want
        .keys()
        .map(|reason| {
            let series = format!(
                "baton_http_requests_rejected_total{{listener=\"web\",reason=\"{reason}\"}}"
            );
            (
                *reason,
                baton_tests::admin::sample(&scrape, &series).unwrap_or(-1.0),
            )
        })
        .collect();
    assert_eq!(got, want, "refusals by reason");
}

// === hostile responses ===

/// What a client must get for a hostile upstream response.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// baton's own 502: the head was refused.
    BadGateway,
    /// No complete response: the body went wrong after the head.
    Cut,
    /// The response passes (its framing is sound) with this status and
    /// body; what the upstream sent after it is never read as a response.
    Passes(u16, &'static [u8]),
}

/// (name, the upstream's raw answer, what the client gets).
const HOSTILE: &[(&str, &[u8], Want)] = &[
    (
        "te-and-cl",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Want::BadGateway,
    ),
    (
        "two-lengths",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        Want::BadGateway,
    ),
    (
        "bad-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello",
        Want::BadGateway,
    ),
    (
        "connection-content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello",
        Want::BadGateway,
    ),
    (
        "connection-transfer-encoding",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Want::BadGateway,
    ),
    (
        "http10-chunked",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Want::BadGateway,
    ),
    (
        "chunked-not-last",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Want::BadGateway,
    ),
    (
        "bare-cr-in-head",
        b"HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 5\r\n\r\nhello",
        Want::BadGateway,
    ),
    (
        "obs-fold",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: a\r\n b\r\n\r\nhello",
        Want::BadGateway,
    ),
    (
        "unasked-101",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        Want::BadGateway,
    ),
    (
        "bad-chunk-size",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        Want::Cut,
    ),
    (
        "chunk-longer-than-its-size",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
        Want::Cut,
    ),
    (
        "extra-bytes-after-a-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\npoison!",
        Want::Passes(200, b"ok"),
    ),
    (
        "extra-bytes-after-chunks",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\npoison!",
        Want::Passes(200, b"ok"),
    ),
    (
        "extra-bytes-after-a-204",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\npoison!",
        Want::Passes(204, b""),
    ),
];

/// The upstream answers `/hostile/<name>` as [`HOSTILE`] says, and keeps
/// the connection open (so that a proxy that pooled it would reuse it).
fn hostile_upstream_responder() -> Responder {
    Arc::new(|r: &Recorded| {
        let name = r.target.strip_prefix("/hostile/")?;
        HOSTILE
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, raw, _)| (raw.to_vec(), false))
    })
}

/// The upstream connections that carried `/hostile/` requests must carry
/// nothing else: every other request came on a connection of its own.
fn never_reused(up: &RecordingUpstream) -> Result<(), String> {
    let requests = up.requests();
    let hostile: std::collections::HashSet<usize> = requests
        .iter()
        .filter(|r| r.target.starts_with("/hostile/"))
        .map(|r| r.conn)
        .collect();
    match requests
        .iter()
        .find(|r| !r.target.starts_with("/hostile/") && hostile.contains(&r.conn))
    {
        Some(r) => Err(format!(
            "{} {} went on connection {}, after a hostile response",
            r.method, r.target, r.conn
        )),
        None => Ok(()),
    }
}

/// An upstream's response smuggling attempts — framed two ways, framing
/// fields named by `Connection`, broken chunks, a 101 nobody asked for,
/// bytes after the end — get the client a 502 (or a cut connection once
/// the head is out) and never poison the client connection or the pool:
/// that upstream connection is never used again, and what follows gets
/// its own answer. Over HTTP/1.1 and HTTP/2 clients; counted in
/// `baton_http_upstream_bad_responses_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_upstream_responses_never_poison_the_client_or_the_pool() {
    let up = RecordingUpstream::start_with(Some(hostile_upstream_responder())).await;
    let baton = Baton::start(&baton_config(up.addr));
    let web = baton.addr("web");
    let mut wrong = Vec::new();
    for (name, _, want) in HOSTILE {
        // HTTP/1.1: the hostile request and one after it, pipelined.
        let case = Case {
            name,
            family: "response",
            parts: vec![
                format!(
                    "GET /hostile/{name} HTTP/1.1\r\nHost: x\r\n\r\nGET /after/{name} HTTP/1.1\r\nHost: x\r\n\r\n"
                )
                .into_bytes(),
            ],
            expect: Expect::Incomplete,
        };
        let o = run_case(web, &up, &case, PATIENCE).await;
        let first = o.answers.first();
        let ok = match want {
            Want::BadGateway => {
                first.is_some_and(|a| a.status == 502 && !a.from_upstream) && o.answers.len() == 1
            }
            Want::Cut => !o.answers.iter().any(|a| a.complete && a.status == 200),
            Want::Passes(status, body) => {
                first.is_some_and(|a| a.status == *status && a.body == *body && a.complete)
                    && o.answers.get(1).is_some_and(|a| {
                        a.from_upstream
                            && a.body.starts_with(format!("GET /after/{name} ").as_bytes())
                    })
            }
        };
        if !ok {
            wrong.push(format!("HTTP/1.1 {name}: {want:?}, got {}", describe(&o)));
        }
        // A new client afterwards is served.
        let after = Case {
            name,
            family: "response",
            parts: vec![format!("GET /after2/{name} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()],
            expect: Expect::Incomplete,
        };
        let o = run_case(web, &up, &after, PATIENCE).await;
        if !o
            .answers
            .first()
            .is_some_and(|a| a.from_upstream && a.status == 200)
        {
            wrong.push(format!("HTTP/1.1 after {name}: {}", describe(&o)));
        }

        // HTTP/2 to the same HTTP/1.1 upstream: the same, as streams.
        let mut h2 = H2Client::connect(web).await;
        let get = |path: String| {
            vec![
                (":method", "GET".to_string()),
                (":scheme", "http".to_string()),
                (":path", path),
                (":authority", "x".to_string()),
            ]
        };
        let fields = get(format!("/hostile/{name}"));
        let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        h2.headers(1, &fields, true).await;
        let end = h2.outcome(1).await;
        let ok = match want {
            Want::BadGateway => matches!(end, StreamEnd::Response { status: 502, .. }),
            Want::Cut => !matches!(end, StreamEnd::Response { status: 200, .. }),
            Want::Passes(status, body) => {
                end == StreamEnd::Response {
                    status: *status,
                    body: body.to_vec(),
                }
            }
        };
        if !ok {
            wrong.push(format!("HTTP/2 {name}: {want:?}, got {end:?}"));
        }
        let mut h2 = H2Client::connect(web).await;
        let fields = get(format!("/after3/{name}"));
        let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        h2.headers(1, &fields, true).await;
        match h2.outcome(1).await {
            StreamEnd::Response { status: 200, body } if body.starts_with(b"GET /after3/") => {}
            other => wrong.push(format!("HTTP/2 after {name}: {other:?}")),
        }
        up.close_all().await;
    }
    if let Err(e) = never_reused(&up) {
        wrong.push(e);
    }
    assert!(
        wrong.is_empty(),
        "{wrong:#?}\nupstream saw: {:#?}",
        up.events()
    );

    // Each refused head (502) or broken body (cut) counted, both ways.
    let refused = HOSTILE
        .iter()
        .filter(|(_, _, w)| !matches!(w, Want::Passes(..)))
        .count() as f64;
    let admin = baton.admin_addr();
    let series = "baton_http_upstream_bad_responses_total{listener=\"web\"}";
    let count = || baton_tests::admin::sample(&http(admin, "GET", "/metrics").body, series);
    // The worker reports its counters every second: wait for them.
    let deadline = std::time::Instant::now() + PATIENCE;
    while count() != Some(2.0 * refused) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(), Some(2.0 * refused), "{series}");
}

// === HTTP/2 requests and HTTP/2 upstreams ===

/// baton with `/h2…` routed to an `http2` cluster, the rest to an
/// `http1` one, `/admin/` answered 403.
fn mixed_config(h1: SocketAddr, h2: SocketAddr) -> String {
    format!(
        "[supervisor]\ndrain_timeout = \"5s\"\n\n\
         [[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\ncluster = \"h1up\"\n\n\
         [[listeners.routes]]\npath_prefix = \"/admin/\"\ndirect = {{ status = 403, body = \"forbidden\" }}\n\n\
         [[listeners.routes]]\npath_prefix = \"/h2\"\ncluster = \"h2up\"\n\n\
         [[clusters]]\nname = \"h1up\"\nendpoints = [\"{h1}\"]\nconnect_timeout = \"2s\"\n\n\
         [[clusters]]\nname = \"h2up\"\nprotocol = \"http2\"\nendpoints = [\"{h2}\"]\nconnect_timeout = \"2s\"\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n"
    )
}

/// What an HTTP/2 request must come to.
#[derive(Debug, Clone, Copy)]
enum H2Want {
    /// A stream error (RST_STREAM PROTOCOL_ERROR), nothing complete
    /// upstream.
    Reset,
    /// baton's own answer, nothing upstream.
    Status(u16),
    /// One request upstream with this body; its Host (`:authority`) is
    /// `x`; over HTTP/1.1 its framing is one `Content-Length` or chunked.
    Forwarded(&'static [u8]),
}

/// (name, fields after `:method POST`, `:scheme`, `:path`, body (None:
/// END_STREAM on the HEADERS), what it comes to). A field `:authority` in
/// the list replaces the default `x`; `-:authority` drops it.
type H2Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<&'static [u8]>,
    H2Want,
);

const H2_CASES: &[H2Case] = &[
    (
        "connection",
        &[("connection", "keep-alive")],
        Some(b"hello"),
        H2Want::Reset,
    ),
    (
        "connection-names-content-length",
        &[("connection", "content-length"), ("content-length", "5")],
        Some(b"hello"),
        H2Want::Reset,
    ),
    (
        "transfer-encoding",
        &[("transfer-encoding", "chunked")],
        Some(b"5\r\nhello\r\n0\r\n\r\n"),
        H2Want::Reset,
    ),
    (
        "te-not-trailers",
        &[("te", "gzip")],
        Some(b"hello"),
        H2Want::Reset,
    ),
    (
        "upgrade",
        &[("upgrade", "h2c")],
        Some(b"hello"),
        H2Want::Reset,
    ),
    (
        "keep-alive",
        &[("keep-alive", "5")],
        Some(b"hello"),
        H2Want::Reset,
    ),
    (
        "proxy-connection",
        &[("proxy-connection", "keep-alive")],
        Some(b"hello"),
        H2Want::Reset,
    ),
    (
        "length-over-data",
        &[("content-length", "10")],
        Some(b"hello"),
        H2Want::Reset,
    ),
    (
        "length-under-data",
        &[("content-length", "3")],
        Some(b"hello"),
        H2Want::Reset,
    ),
    (
        "length-without-data",
        &[("content-length", "5")],
        None,
        H2Want::Reset,
    ),
    (
        "two-different-lengths",
        &[("content-length", "5"), ("content-length", "6")],
        Some(b"hello"),
        H2Want::Reset,
    ),
    (
        "host-differs-from-authority",
        &[("host", "admin.internal")],
        None,
        H2Want::Status(400),
    ),
    (
        "host-with-userinfo",
        &[("-:authority", ""), ("host", "y@x")],
        None,
        H2Want::Status(400),
    ),
    (
        "host-equals-authority",
        &[("host", "x")],
        Some(b"hello"),
        H2Want::Forwarded(b"hello"),
    ),
    (
        "host-without-authority",
        &[("-:authority", ""), ("host", "x")],
        Some(b"hello"),
        H2Want::Forwarded(b"hello"),
    ),
    (
        "two-equal-lengths",
        &[("content-length", "5"), ("content-length", "5")],
        Some(b"hello"),
        H2Want::Forwarded(b"hello"),
    ),
    (
        "length-and-data",
        &[("content-length", "5")],
        Some(b"hello"),
        H2Want::Forwarded(b"hello"),
    ),
    (
        "data-without-length",
        &[],
        Some(b"hello"),
        H2Want::Forwarded(b"hello"),
    ),
    (
        "te-trailers",
        &[("te", "trailers")],
        Some(b"hello"),
        H2Want::Forwarded(b"hello"),
    ),
];

/// HTTP/2 requests that break its framing rules — connection-specific
/// fields (RFC 9113 §8.2.2), a `content-length` the DATA disagrees with
/// (§8.1.1), a `host` that names another authority than `:authority`
/// (§8.3.1) — are stream errors (or a 400), and nothing of them reaches
/// an HTTP/1.1 or HTTP/2 upstream complete; sound ones reach both with
/// their body, a Host, and HTTP/1.1 framing written by baton (one
/// `Content-Length`, or chunked when there is none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_keep_the_framing_rules_to_both_kinds_of_upstream() {
    let h1 = RecordingUpstream::start().await;
    let h2 = H2RecordingUpstream::start().await;
    let baton = Baton::start(&mixed_config(h1.addr, h2.addr));
    let web = baton.addr("web");
    let mut wrong = Vec::new();
    for (name, fields, body, want) in H2_CASES {
        for prefix in ["/h1", "/h2"] {
            let path = format!("{prefix}/{name}");
            let mut all: Vec<(&str, &str)> =
                vec![(":method", "POST"), (":scheme", "http"), (":path", &path)];
            if !fields.iter().any(|(n, _)| *n == "-:authority") {
                all.push((":authority", "x"));
            }
            all.extend(fields.iter().filter(|(n, _)| !n.starts_with('-')).copied());
            let (h1_before, h2_before) = (h1.events().len(), h2.events().len());
            let mut client = H2Client::connect(web).await;
            client.headers(1, &all, body.is_none()).await;
            if let Some(body) = body {
                client.data(1, body, true).await;
            }
            let end = client.outcome(1).await;
            h1.settle().await;
            let h1_events = h1.events()[h1_before..].to_vec();
            let h2_events = h2.events()[h2_before..].to_vec();
            let requests: Vec<&Recorded> = h1_events
                .iter()
                .chain(&h2_events)
                .filter_map(|e| match e {
                    Event::Request(r) => Some(r),
                    _ => None,
                })
                .collect();
            let why = match want {
                H2Want::Reset => (end != StreamEnd::Reset(h2_raw::PROTOCOL_ERROR)
                    || !requests.is_empty())
                .then(|| "wanted a PROTOCOL_ERROR reset and nothing upstream".to_string()),
                H2Want::Status(status) => {
                    (!matches!(end, StreamEnd::Response { status: s, .. } if s == *status)
                        || !h1_events.is_empty()
                        || !h2_events.is_empty())
                    .then(|| format!("wanted baton's {status} and nothing upstream"))
                }
                H2Want::Forwarded(want_body) => match requests.as_slice() {
                    [r] if r.body == *want_body
                        && r.target == path
                        && matches!(end, StreamEnd::Response { status: 200, .. }) =>
                    {
                        h2_forwarded_wrong(prefix, r)
                    }
                    _ => Some(format!(
                        "wanted one request with {:?}",
                        String::from_utf8_lossy(want_body)
                    )),
                },
            };
            if let Some(why) = why {
                wrong.push(format!(
                    "{path}: {why}; client: {end:?}; upstream: {:?} {:?}",
                    h1_events, h2_events
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// What is wrong with a forwarded HTTP/2 request's head upstream, if
/// anything.
fn h2_forwarded_wrong(prefix: &str, r: &Recorded) -> Option<String> {
    let count = |name: &str| {
        r.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    };
    if prefix == "/h2" {
        return (r.header(":authority") != Some("x") || count("host") > 0)
            .then(|| format!(":authority/host wrong: {:?}", r.headers));
    }
    let framed = match (count("content-length"), r.header("transfer-encoding")) {
        (1, None) => r.header("content-length") == Some("5"),
        (0, Some("chunked")) => true,
        _ => false,
    };
    let clean = [
        "connection-specific",
        "te",
        "upgrade",
        "keep-alive",
        "proxy-connection",
    ]
    .iter()
    .all(|f| !r.has(f));
    (r.header("host") != Some("x") || count("host") != 1 || !framed || !clean)
        .then(|| format!("the HTTP/1.1 head is wrong: {:?}", r.headers))
}

/// An HTTP/1.1 client to an `http2` cluster: the same refusals before
/// anything goes upstream; a chunked body arrives as DATA without
/// `transfer-encoding`, a length-delimited one with its `content-length`;
/// an absolute-form target gives `:authority`; an `h2c` upgrade is not
/// passed on; and an HTTP/2 upstream whose `content-length` its DATA
/// breaks never gets a complete response to the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_to_an_http2_cluster_keeps_the_same_rules() {
    let h1 = RecordingUpstream::start().await;
    let h2 = H2RecordingUpstream::start().await;
    let baton = Baton::start(&mixed_config(h1.addr, h2.addr));
    let web = baton.addr("web");
    let send = |bytes: &str| Case {
        name: "h1-to-h2",
        family: "h1-to-h2",
        parts: vec![bytes.as_bytes().to_vec()],
        expect: Expect::Incomplete,
    };
    let mut wrong = Vec::new();

    for (what, request, status) in [
        (
            "Connection: Content-Length",
            "POST /h2/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello",
            400,
        ),
        (
            "Connection: Host",
            "GET /h2/a HTTP/1.1\r\nHost: x\r\nConnection: Host\r\n\r\n",
            400,
        ),
        (
            "CL and TE",
            "POST /h2/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "a bad chunk",
            "POST /h2/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
            400,
        ),
    ] {
        let before = h2.events().len();
        let o = run_case(web, &h1, &send(request), PATIENCE).await;
        if !(o.answers.len() == 1 && o.answers[0].status == status && h2.events().len() == before) {
            wrong.push(format!(
                "{what}: wanted {status} and nothing upstream, got {}",
                describe(&o)
            ));
        }
    }

    let (h1, h2) = (&h1, &h2);
    let forwarded = |request: &'static str| {
        let before = h2.events().len();
        let case = send(request);
        async move {
            let o = run_case(web, h1, &case, PATIENCE).await;
            let events = h2.events()[before..].to_vec();
            (o, events)
        }
    };
    let (o, events) = forwarded(
        "POST /h2/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
    )
    .await;
    match events.as_slice() {
        [Event::Request(r)]
            if r.body == b"hello"
                && !r.has("transfer-encoding")
                && o.answers.first().is_some_and(|a| a.status == 200) => {}
        _ => wrong.push(format!("chunked: {events:?} {}", describe(&o))),
    }
    let (o, events) =
        forwarded("POST /h2/length HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").await;
    match events.as_slice() {
        [Event::Request(r)]
            if r.body == b"hello"
                && r.header("content-length") == Some("5")
                && o.answers.first().is_some_and(|a| a.status == 200) => {}
        _ => wrong.push(format!("length: {events:?} {}", describe(&o))),
    }
    let (o, events) = forwarded("GET http://y/h2/absolute HTTP/1.1\r\nHost: z\r\n\r\n").await;
    match events.as_slice() {
        [Event::Request(r)] if r.header(":authority") == Some("y") && !r.has("host") => {}
        _ => wrong.push(format!("absolute form: {events:?} {}", describe(&o))),
    }
    let (o, events) = forwarded(
        "GET /h2/upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    match events.as_slice() {
        [Event::Request(r)]
            if !r.has("upgrade")
                && !r.has("http2-settings")
                && o.answers.first().is_some_and(|a| a.status == 200) => {}
        _ => wrong.push(format!("h2c upgrade: {events:?} {}", describe(&o))),
    }
    let (o, _) = forwarded("GET /h2-short-body HTTP/1.1\r\nHost: x\r\n\r\n").await;
    if o.answers.iter().any(|a| a.complete && a.status == 200) {
        wrong.push(format!(
            "a short h2 body passed as complete: {}",
            describe(&o)
        ));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // And an HTTP/2 client's stream to that upstream is reset, not ended.
    let mut client = H2Client::connect(web).await;
    client
        .headers(
            1,
            &[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/h2-short-body"),
                (":authority", "x"),
            ],
            true,
        )
        .await;
    let end = client.outcome(1).await;
    assert!(
        !matches!(end, StreamEnd::Response { .. }),
        "a short h2 body passed as complete: {end:?}"
    );
}
