//! h2spec, the HTTP/2 conformance suite, against baton's h2c listener
//! (prior knowledge) and its TLS listener (ALPN h2), both in front of an
//! HTTP/1.1 upstream that answers every request 200.
//!
//! Each run must fail exactly the cases accepted below, each with its
//! reason: a new failure is a regression, and a case that starts passing
//! must leave the list. `.ci/run` installs h2spec (`go install`); the test
//! fails, it never skips, when it is missing.
//!
//! The ignored test `h2spec_scores` runs the same suite against nginx and
//! HAProxy set up the same way and prints the scores that BENCHMARKS.md
//! quotes.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use baton_tests::certs::Ca;
use baton_tests::http_peer::{HttpUpstream, Nginx, free_port};
use baton_tests::{Baton, PATIENCE, eventually};

/// What `.ci/run` installs: the newest h2spec the Go module proxy serves
/// (its v2.3.0 and later tags carry a go.mod without the `/v2` suffix,
/// which the proxy refuses as module versions).
const H2SPEC_MODULE: &str = "github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible";

/// How long h2spec waits for a frame that should come (its `-o`): a
/// failed case costs this much, a passing one never waits it out.
const H2SPEC_CASE_TIMEOUT_SECS: &str = "2";

/// The cases baton's h2c listener fails, and why each is accepted.
const ACCEPTED_H2C: &[(&str, &str)] = &[(
    "http2/3.5/2",
    "An invalid connection preface. The plaintext listener serves HTTP/1.1 and h2c on one \
     port: bytes that are not the preface are an HTTP/1.1 request, answered 400 before the \
     close. h2spec reads the HTTP/1.1 answer as a broken frame where it wants a bare close.",
)];

/// The cases baton's TLS listener fails, and why each is accepted.
const ACCEPTED_TLS: &[(&str, &str)] = &[];

// === h2spec ===

/// h2spec on the PATH, else where `go install` puts it: `$GOBIN`, else
/// `$(go env GOPATH)/bin`.
fn h2spec_binary() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let go_env = |key: &str| {
        std::process::Command::new("go")
            .args(["env", key])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(gobin) = go_env("GOBIN") {
        dirs.push(PathBuf::from(gobin));
    }
    if let Some(gopath) = go_env("GOPATH") {
        dirs.extend(std::env::split_paths(&gopath).map(|p| p.join("bin")));
    }
    dirs.into_iter()
        .map(|d| d.join("h2spec"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("h2spec is not installed: .ci/run installs it (go install {H2SPEC_MODULE})")
        })
}

/// One h2spec run: every case's id (`http2/5.1/9`) and how it went.
#[derive(Debug)]
struct Run {
    cases: BTreeMap<String, Verdict>,
    /// h2spec's own output, for a failure's details.
    output: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Passed,
    Failed,
    Skipped,
}

impl Run {
    fn with(&self, verdict: Verdict) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|(_, v)| **v == verdict)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    fn score(&self) -> String {
        format!(
            "{} of {} passed ({} failed, {} skipped)",
            self.with(Verdict::Passed).len(),
            self.cases.len(),
            self.with(Verdict::Failed).len(),
            self.with(Verdict::Skipped).len()
        )
    }
}

/// Runs h2spec against `addr` (over TLS, certificate unchecked, if
/// `tls`) and reads its JUnit report.
async fn h2spec(addr: SocketAddr, tls: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.xml");
    let mut command = tokio::process::Command::new(h2spec_binary());
    command
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-o", H2SPEC_CASE_TIMEOUT_SECS, "-j"])
        .arg(&report)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if tls {
        command.args(["-t", "-k"]);
    }
    // h2spec runs ~150 cases, a few of which wait out their timeout.
    let out = tokio::time::timeout(PATIENCE * 6, command.output())
        .await
        .expect("h2spec finished")
        .expect("h2spec runs");
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    let xml = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no h2spec report ({e}):\n{output}"));
    let cases = parse_junit(&xml);
    assert!(
        cases.len() > 100,
        "h2spec ran {} cases:\n{output}",
        cases.len()
    );
    Run { cases, output }
}

/// h2spec's JUnit report: a `<testsuite package="http2/5.1">` per
/// section, its `<testcase>`s in order (numbered from 1, as h2spec numbers
/// them), each with a `<failure>`, `<error>` or `<skipped>` inside, or
/// nothing when it passed. One element per line (Go's `MarshalIndent`).
fn parse_junit(xml: &str) -> BTreeMap<String, Verdict> {
    let attr = |line: &str, name: &str| {
        let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = line[start..].find('"')?;
        Some(line[start..start + len].to_string())
    };
    let mut cases = BTreeMap::new();
    let (mut package, mut number) = (String::new(), 0);
    let mut open: Option<String> = None;
    for line in xml.lines().map(str::trim) {
        if line.starts_with("<testsuite ") {
            package = attr(line, "package").expect("a testsuite's package");
            number = 0;
        } else if line.starts_with("<testcase ") {
            number += 1;
            let id = format!("{package}/{number}");
            if line.ends_with("</testcase>") || line.ends_with("/>") {
                cases.insert(id, Verdict::Passed);
            } else {
                open = Some(id);
            }
        } else if let Some(id) = open.take() {
            let verdict = if line.starts_with("<skipped") {
                Verdict::Skipped
            } else if line.starts_with("<failure") || line.starts_with("<error") {
                Verdict::Failed
            } else {
                panic!("unexpected line in h2spec's report for {id}: {line}");
            };
            cases.insert(id, verdict);
        }
    }
    cases
}

/// The failed cases of `run` are exactly `accepted`'s.
fn expect_failures(what: &str, run: &Run, accepted: &[(&str, &str)]) {
    let failed = run.with(Verdict::Failed);
    let mut expected: Vec<&str> = accepted.iter().map(|(id, _)| *id).collect();
    expected.sort();
    eprintln!("h2spec against {what}: {}", run.score());
    assert_eq!(
        failed, expected,
        "h2spec against {what}: the failures differ from the accepted ones\n{}",
        run.output
    );
}

// === the peers ===

/// baton with an h2c listener `h2c` and a TLS listener `tls` (ALPN h2 and
/// http/1.1), both to `upstream`.
fn baton(dir: &Path, upstream: SocketAddr) -> Baton {
    let ca = Ca::new(dir, "ca");
    let cert = ca.issue("server", &["DNS:localhost", "IP:127.0.0.1"]);
    Baton::start(&format!(
        "[[listeners]]\nname = \"h2c\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         cluster = \"app\"\n\n\
         [[listeners]]\nname = \"tls\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         cluster = \"app\"\n\
         [listeners.tls]\ncertificates = [{{ cert = \"{}\", key = \"{}\" }}]\n\n\
         [[clusters]]\nname = \"app\"\nendpoints = [\"{upstream}\"]\n",
        cert.cert.display(),
        cert.key.display()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2spec_passes_against_h2c_but_the_accepted_cases() {
    let upstream = HttpUpstream::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let baton = baton(dir.path(), upstream.addr);
    let run = h2spec(baton.addr("h2c"), false).await;
    expect_failures("baton h2c", &run, ACCEPTED_H2C);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2spec_passes_against_tls_but_the_accepted_cases() {
    let upstream = HttpUpstream::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let baton = baton(dir.path(), upstream.addr);
    let run = h2spec(baton.addr("tls"), true).await;
    expect_failures("baton TLS", &run, ACCEPTED_TLS);
}

/// HAProxy run by the test: `bind` options, to `upstream`, in the
/// foreground, its config in a temp dir.
struct Haproxy {
    addr: SocketAddr,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(bind: &str, upstream: SocketAddr) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
                 frontend web\n  bind {addr} {bind}\n  default_backend app\n\
                 backend app\n  server app {upstream}\n"
            ),
        )
        .unwrap();
        let child = tokio::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("haproxy runs (.ci/run installs it)");
        eventually("haproxy to accept connections", || {
            std::net::TcpStream::connect(addr).is_ok()
        });
        Haproxy {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The scores BENCHMARKS.md quotes: baton, nginx and HAProxy, each as a
/// reverse proxy to the same upstream, over h2c and over TLS.
///
/// `cargo test -p baton-tests --test h2spec -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints a comparison for BENCHMARKS.md; the two tests above are the gate"]
async fn h2spec_scores() {
    let upstream = HttpUpstream::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "peers");
    let cert = ca.issue("peer", &["DNS:localhost", "IP:127.0.0.1"]);
    // HAProxy wants the chain and key in one file.
    let pem = dir.path().join("peer-combined.pem");
    let combined =
        std::fs::read_to_string(&cert.cert).unwrap() + &std::fs::read_to_string(&cert.key).unwrap();
    std::fs::write(&pem, combined).unwrap();

    let baton = baton(dir.path(), upstream.addr);
    let proxy = format!("location / {{ proxy_pass http://{}; }}", upstream.addr);
    let nginx_h2c = Nginx::start_listening("http2", &proxy);
    let nginx_tls = Nginx::start_listening(
        "ssl http2",
        &format!(
            "ssl_certificate {};\nssl_certificate_key {};\n{proxy}",
            cert.cert.display(),
            cert.key.display()
        ),
    );
    let haproxy_h2c = Haproxy::start("proto h2", upstream.addr);
    // One bind for HTTP/1.1 and h2c (the preface picks), as baton's.
    let haproxy_both = Haproxy::start("", upstream.addr);
    let haproxy_tls = Haproxy::start(
        &format!("ssl crt {} alpn h2,http/1.1", pem.display()),
        upstream.addr,
    );
    let version = |cmd: &str, arg: &str| {
        let out = std::process::Command::new(cmd).arg(arg).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        text.lines().next().unwrap_or("").to_string()
    };
    eprintln!("h2spec ({H2SPEC_MODULE}), -o {H2SPEC_CASE_TIMEOUT_SECS}");
    eprintln!("{}", version("nginx", "-v"));
    eprintln!("{}", version("haproxy", "-v"));
    eprintln!("| proxy | listener | passed | failed cases |");
    eprintln!("|---|---|---|---|");
    for (proxy, listener, addr, tls) in [
        ("baton", "h2c and HTTP/1.1", baton.addr("h2c"), false),
        ("baton", "TLS, ALPN h2", baton.addr("tls"), true),
        ("nginx", "h2c (`listen … http2`)", nginx_h2c.addr, false),
        ("nginx", "TLS, ALPN h2", nginx_tls.addr, true),
        ("HAProxy", "h2c (`proto h2`)", haproxy_h2c.addr, false),
        ("HAProxy", "h2c and HTTP/1.1", haproxy_both.addr, false),
        ("HAProxy", "TLS, ALPN h2", haproxy_tls.addr, true),
    ] {
        let run = h2spec(addr, tls).await;
        eprintln!(
            "| {proxy} | {listener} | {} | {} |",
            run.score(),
            run.with(Verdict::Failed).join(" ")
        );
    }
}
