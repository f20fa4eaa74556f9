//! The `compression` filter end to end (issue 15): nginx serves a large
//! text file through baton; curl asks for each encoding over HTTP/1.1
//! and HTTP/2 (h2c), and what it gets decodes to the file's bytes; the
//! responses the filter must leave alone arrive as nginx sent them.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;

use baton_tests::Baton;
use baton_tests::http_peer::{Nginx, curl};

/// The two client protocols, as curl is told to speak them.
const VERSIONS: [&str; 2] = ["--http1.1", "--http2-prior-knowledge"];

/// A text file of about 300 KiB: many body pieces through the encoder.
fn text() -> Vec<u8> {
    let words = [
        "baton",
        "proxy",
        "upstream",
        "listener",
        "generation",
        "filter",
        "route",
        "cluster",
    ];
    let mut out = String::new();
    for i in 0..6000u32 {
        let w = |k: u32| words[((i * 7 + k * 3) % 8) as usize];
        out.push_str(&format!(
            "{i:05} {} {} {} {}\n",
            w(1),
            w(2),
            w(5),
            i * 31 % 977
        ));
    }
    out.into_bytes()
}

/// nginx serving `text()` as `/big.txt` (text/plain, with a length and
/// a strong etag), the same bytes as an image (`/img/big.txt`) and with
/// `cache-control: no-transform` (`/keep/big.txt`), an answer already
/// encoded (`/encoded`), a small one (`/small`) and a 204 (`/nothing`).
struct Site {
    nginx: Nginx,
    text: Vec<u8>,
    _root: tempfile::TempDir,
}

fn site() -> Site {
    site_listening("")
}

/// [`site`], nginx's `listen` with `listen` parameters (`http2`: h2c).
fn site_listening(listen: &str) -> Site {
    let root = tempfile::tempdir().unwrap();
    let text = text();
    for dir in ["", "img", "keep"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
        std::fs::write(root.path().join(dir).join("big.txt"), &text).unwrap();
    }
    let nginx = Nginx::start_listening(
        listen,
        &format!(
            "    root {};\n    default_type text/plain;\n\
         location /img/ {{ default_type image/png; }}\n\
         location /keep/ {{ add_header Cache-Control no-transform; }}\n\
         location = /encoded {{ add_header Content-Encoding gzip; return 200 \"{}\"; }}\n\
         location = /small {{ return 200 \"tiny\"; }}\n\
         location = /nothing {{ return 204; }}",
            root.path().display(),
            "not really gzip ".repeat(8),
        ),
    );
    Site {
        nginx,
        text,
        _root: root,
    }
}

fn config(upstream: std::net::SocketAddr) -> String {
    config_for(upstream, "http1")
}

/// [`config`] with the cluster speaking `protocol` (`http1`, `http2`).
fn config_for(upstream: std::net::SocketAddr, protocol: &str) -> String {
    format!(
        r#"[[listeners]]
name = "web"
address = "127.0.0.1:0"
protocol = "http"
cluster = "c"
filters = [{{ name = "compression" }}]

[[clusters]]
name = "c"
protocol = "{protocol}"
endpoints = ["{upstream}"]
"#
    )
}

/// A response as curl wrote it: the final head's fields (names
/// lowercase) and the body's bytes.
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `curl` with `args` for `url`; its head and body, as they came.
async fn fetch(args: &[&str], url: &str) -> Got {
    let dir = tempfile::tempdir().unwrap();
    let head_path = dir.path().join("head");
    let body_path = dir.path().join("body");
    let mut all = vec![
        "-D",
        head_path.to_str().unwrap(),
        "-o",
        body_path.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    all.push(url);
    curl(&all).await;
    let head = std::fs::read_to_string(&head_path).unwrap();
    let body = std::fs::read(&body_path).unwrap_or_default();
    parse_head(&head, body)
}

fn parse_head(head: &str, body: Vec<u8>) -> Got {
    // The last head: after any interim ones.
    let last = head
        .split("\r\n\r\n")
        .filter(|h| !h.trim().is_empty())
        .last()
        .unwrap();
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    Got {
        status,
        headers,
        body,
    }
}

fn decode(encoding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::stream::decode_all(bytes).unwrap(),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_encoding_on_both_protocols_decodes_to_the_file() {
    let site = site();
    let baton = Baton::start(&config(site.nginx.addr));
    let url = format!("http://{}/big.txt", baton.addr("web"));
    let direct = fetch(&[], &format!("http://{}/big.txt", site.nginx.addr)).await;
    let etag = direct
        .header("etag")
        .expect("nginx sends an etag")
        .to_string();
    assert!(!etag.starts_with("W/"), "{etag}");
    for version in VERSIONS {
        for encoding in ["gzip", "br", "zstd"] {
            let what = format!("{version} {encoding}");
            let accept = format!("accept-encoding: {encoding}");
            let got = fetch(&[version, "-H", &accept], &url).await;
            assert_eq!(got.status, 200, "{what}");
            assert_eq!(got.header("content-encoding"), Some(encoding), "{what}");
            assert_eq!(got.header("vary"), Some("accept-encoding"), "{what}");
            assert_eq!(got.header("content-length"), None, "{what}");
            assert_eq!(got.header("etag"), Some(&*format!("W/{etag}")), "{what}");
            if version == "--http1.1" {
                assert_eq!(got.header("transfer-encoding"), Some("chunked"), "{what}");
            }
            assert!(
                got.body.len() < site.text.len() / 3,
                "{what}: {} bytes",
                got.body.len()
            );
            assert!(
                decode(encoding, &got.body) == site.text,
                "{what}: not the file"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_compressed_gets_the_servers_first_choice() {
    let site = site();
    let baton = Baton::start(&config(site.nginx.addr));
    let url = format!("http://{}/big.txt", baton.addr("web"));
    for version in VERSIONS {
        // curl offers deflate, gzip, br and zstd, all at q=1: the
        // filter's order (zstd first) decides.
        let got = fetch(&[version, "--compressed"], &url).await;
        assert_eq!(got.header("content-encoding"), Some("zstd"), "{version}");
        assert!(got.body == site.text, "{version}: curl's decoding differs");
        // A client that weighs gzip higher gets gzip.
        let got = fetch(
            &[version, "-H", "accept-encoding: zstd;q=0.5, br;q=0.4, gzip"],
            &url,
        )
        .await;
        assert_eq!(got.header("content-encoding"), Some("gzip"), "{version}");
        assert!(decode("gzip", &got.body) == site.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_the_filter_must_leave_alone_pass_as_they_came() {
    let site = site();
    let baton = Baton::start(&config(site.nginx.addr));
    let base = format!("http://{}", baton.addr("web"));
    let gzip = "accept-encoding: gzip, br, zstd";
    let length = site.text.len().to_string();
    for version in VERSIONS {
        let untouched = |got: &Got, what: &str| {
            assert_eq!(got.header("content-encoding"), None, "{version} {what}");
        };
        // No accept-encoding at all, and one that accepts none of them.
        for args in [
            vec![version],
            vec![version, "-H", "accept-encoding: identity"],
        ] {
            let got = fetch(&args, &format!("{base}/big.txt")).await;
            untouched(&got, "identity");
            assert!(got.body == site.text);
            assert_eq!(got.header("content-length"), Some(&*length));
            // Another accept-encoding would have changed it.
            assert_eq!(got.header("vary"), Some("accept-encoding"));
        }
        // HEAD: the length a GET would get, no body, nothing encoded.
        let got = fetch(&[version, "-I", "-H", gzip], &format!("{base}/big.txt")).await;
        untouched(&got, "HEAD");
        assert_eq!(got.header("content-length"), Some(&*length));
        // Not a type it compresses; no-transform.
        for path in ["/img/big.txt", "/keep/big.txt"] {
            let got = fetch(&[version, "-H", gzip], &format!("{base}{path}")).await;
            untouched(&got, path);
            assert!(got.body == site.text, "{path}");
            assert_eq!(got.header("content-length"), Some(&*length), "{path}");
        }
        // Already encoded: passed on as nginx sent it.
        let got = fetch(&[version, "-H", gzip], &format!("{base}/encoded")).await;
        assert_eq!(got.header("content-encoding"), Some("gzip"));
        assert_eq!(got.body, "not really gzip ".repeat(8).as_bytes());
        // Below min_content_length (30), and a 204.
        let got = fetch(&[version, "-H", gzip], &format!("{base}/small")).await;
        untouched(&got, "small");
        assert_eq!(got.body, b"tiny");
        let got = fetch(&[version, "-H", gzip], &format!("{base}/nothing")).await;
        assert_eq!(got.status, 204);
        untouched(&got, "204");
        assert!(got.body.is_empty());
    }
    // An HTTP/1.0 client could not take the chunked body.
    let got = fetch(&["--http1.0", "-H", gzip], &format!("{base}/big.txt")).await;
    assert_eq!(got.header("content-encoding"), None, "HTTP/1.0");
    assert!(got.body == site.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_upstreams_responses_are_compressed_too() {
    let site = site_listening("http2");
    let baton = Baton::start(&config_for(site.nginx.addr, "http2"));
    let base = format!("http://{}", baton.addr("web"));
    for version in VERSIONS {
        let got = fetch(
            &[version, "-H", "accept-encoding: br"],
            &format!("{base}/big.txt"),
        )
        .await;
        assert_eq!(got.header("content-encoding"), Some("br"), "{version}");
        assert_eq!(got.header("content-length"), None, "{version}");
        assert!(decode("br", &got.body) == site.text, "{version}");
        // Left alone: as nginx sent it, with its length.
        let got = fetch(
            &[version, "-H", "accept-encoding: br"],
            &format!("{base}/keep/big.txt"),
        )
        .await;
        assert_eq!(got.header("content-encoding"), None, "{version}");
        assert!(got.body == site.text, "{version}");
    }
}
