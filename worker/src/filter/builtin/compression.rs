//! `compression`: an HTTP filter that compresses responses with gzip,
//! brotli or zstd, as Envoy's compressor filter does (issue 15).
//!
//! # Which encoding
//!
//! The request's `accept-encoding` (its first field line) gives each
//! coding a weight (`q`, 1 when not written; `*` stands for any coding
//! not named; `q=0` refuses). Of the configured `algorithms`, the one the
//! client weighs highest wins; between equal weights, the one listed
//! first. No `accept-encoding`, or none of them accepted: no compression.
//!
//! # Which responses
//!
//! A response is compressed when all of these hold (Envoy's rules):
//!
//! * the request was not `HEAD` nor HTTP/1.0 (whose client cannot take
//!   the chunked body a compressed response becomes; nginx's
//!   `gzip_http_version 1.1` does the same), and the response has a body: not 1xx,
//!   204 or 304, and not ended with its head;
//! * it has no `content-encoding` of its own (already encoded: left as
//!   it is), and its `cache-control` does not say `no-transform`;
//! * its `content-type`'s media type is one of `content_types` (a
//!   response without one is not compressed);
//! * its `content-length`, where it has one, is at least
//!   `min_content_length` (a streamed body of unknown length is
//!   compressed);
//! * it does not announce trailers (`trailer`): the encoder's last block
//!   must be the body's last piece, and no filter can add body data
//!   before trailers. Trailers that come unannounced after the
//!   compression began cut the response (the client would otherwise get
//!   a truncated encoding as a complete one).
//!
//! Compressing sets `content-encoding`, adds `accept-encoding` to `vary`,
//! makes a strong `etag` weak (`W/"…"`: the bytes differ, the meaning
//! does not; Envoy's `weaken_etag_on_compress`), and drops
//! `content-length` ([`ResponseHead::stream_body`]): the exchange frames
//! the body chunked on HTTP/1.1 and by DATA frames on HTTP/2. A response
//! that passes every check on the response but whose request ruled
//! compression out (its `accept-encoding` takes none of the algorithms,
//! or it is HTTP/1.0) is sent as it is with `vary: accept-encoding` all
//! the same, since another request's `accept-encoding` would have changed
//! it (Envoy does the same).
//!
//! # Streaming
//!
//! Each body piece goes through the encoder as it passes and leaves with
//! whatever encoded bytes the encoder has produced (often none for a small
//! piece: the encoder holds at most its window, never the whole body);
//! the end of the body finishes the encoding. A streamed response (server
//! sent events, long polling) is therefore delayed by the encoder's
//! buffering: keep such content types out of `content_types`, as the
//! default list does.
//!
//! The encoders: `flate2` (gzip over zlib-rs), `brotli` (Dropbox's
//! pure-Rust port), `zstd` (bindings to the reference library); levels
//! default to Envoy's (gzip 6, brotli quality 3 with a 2^18-byte window,
//! zstd 3).

use std::io::Write;
use std::sync::Arc;

use baton_config::filter::{Algorithm, Compression as Settings};
use bytes::BytesMut;

use crate::filter::http::{
    Action, HttpFilter, HttpStreamFilter, LocalResponse, RequestHead, ResponseHead,
};
use crate::filter::{ConnInfo, Mobility};

/// Brotli's window: Envoy's default `window_bits` (256 KiB).
const BROTLI_WINDOW_BITS: u32 = 18;

/// Brotli's internal buffer (its default).
const BROTLI_BUFFER: usize = 4096;

/// The configured filter.
#[derive(Debug, Clone)]
pub(crate) struct Compression {
    settings: Arc<Settings>,
}

impl Compression {
    pub(crate) fn new(settings: Settings) -> Compression {
        Compression {
            settings: Arc::new(settings),
        }
    }
}

impl HttpFilter for Compression {
    fn name(&self) -> &'static str {
        "compression"
    }

    /// An encoder lives for one response; between two requests nothing is
    /// kept.
    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(Stream {
            settings: Arc::clone(&self.settings),
            chosen: None,
            encoder: None,
        })
    }
}

/// One request's state: the encoding its `accept-encoding` chose, and the
/// response's encoder once compression began.
struct Stream {
    settings: Arc<Settings>,
    /// `None`: the request accepts none of them, or it is a `HEAD`.
    chosen: Option<Algorithm>,
    encoder: Option<Encoder>,
}

impl HttpStreamFilter for Stream {
    fn on_request_headers(&mut self, head: &mut dyn RequestHead, _end_of_stream: bool) -> Action {
        // An HTTP/1.0 client cannot take the chunked body a compressed
        // response becomes (nginx's `gzip_http_version 1.1` likewise).
        if head.method().eq_ignore_ascii_case("HEAD") || head.is_http10() {
            return Action::Continue;
        }
        self.chosen = head
            .get("accept-encoding")
            .and_then(|value| choose(&self.settings.algorithms, value));
        Action::Continue
    }

    fn on_response_headers(&mut self, head: &mut dyn ResponseHead, end_of_stream: bool) -> Action {
        let status = head.status();
        let no_body =
            end_of_stream || (100..200).contains(&status) || status == 204 || status == 304;
        let too_small = head
            .get("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n < self.settings.min_content_length);
        let compressible = self.compresses_type(head)
            && !no_body
            && !too_small
            && head.get("content-encoding").is_none()
            && head.get("trailer").is_none()
            && !has_token(head.get("cache-control"), "no-transform");
        if !compressible {
            return Action::Continue;
        }
        // Another request's accept-encoding would have changed it.
        add_vary(head);
        let Some(algorithm) = self.chosen else {
            return Action::Continue;
        };
        // Tokens and a value built from a valid one: these cannot fail.
        let _ = head.set("content-encoding", algorithm.token().as_bytes());
        if let Some(etag) = head.get("etag")
            && !etag.starts_with(b"W/")
        {
            let weak = [b"W/", etag].concat();
            let _ = head.set("etag", &weak);
        }
        head.stream_body();
        self.encoder = Some(Encoder::new(algorithm, &self.settings));
        Action::Continue
    }

    fn on_response_body(&mut self, chunk: &mut BytesMut, end_of_stream: bool) -> Action {
        let Some(encoder) = self.encoder.as_mut() else {
            return Action::Continue;
        };
        let encoded = if end_of_stream {
            self.encoder.take().map(|e| e.finish(chunk))
        } else {
            Some(encoder.write(chunk))
        };
        match encoded {
            Some(Ok(bytes)) => {
                chunk.clear();
                chunk.extend_from_slice(&bytes);
                Action::Continue
            }
            // Encoding into memory fails only on a bug in an encoder;
            // cut the response rather than send a broken encoding.
            Some(Err(e)) => {
                tracing::warn!(error = %e, "compression failed");
                cut()
            }
            None => Action::Continue,
        }
    }

    fn on_response_trailers(
        &mut self,
        _trailers: &mut dyn crate::filter::http::HeaderBlock,
    ) -> Action {
        if self.encoder.take().is_some() {
            tracing::debug!("unannounced trailers after compression began: response cut");
            return cut();
        }
        Action::Continue
    }
}

impl Stream {
    /// Whether the response's media type is one the filter compresses.
    fn compresses_type(&self, head: &dyn ResponseHead) -> bool {
        let Some(value) = head.get("content-type") else {
            return false;
        };
        let Ok(value) = std::str::from_utf8(value) else {
            return false;
        };
        let media = value.split(';').next().unwrap_or("").trim();
        self.settings
            .content_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case(media))
    }
}

/// An answer that, past the response head, makes the exchange cut the
/// response.
fn cut() -> Action {
    match LocalResponse::new(500, "compression failed\n") {
        Ok(local) => Action::Respond(Box::new(local)),
        Err(_) => Action::Continue,
    }
}

/// Adds `accept-encoding` to `vary` unless it is there (or `vary: *`).
fn add_vary(head: &mut dyn ResponseHead) {
    let vary = head.get("vary");
    if has_token(vary, "accept-encoding") || has_token(vary, "*") {
        return;
    }
    let value = match vary {
        Some(v) if !v.trim_ascii().is_empty() => [v, b", accept-encoding"].concat(),
        _ => b"accept-encoding".to_vec(),
    };
    let _ = head.set("vary", &value);
}

/// Whether a comma-separated header value has `token` (case-insensitive;
/// parameters after `=` or `;` ignored).
fn has_token(value: Option<&[u8]>, token: &str) -> bool {
    value.is_some_and(|v| {
        v.split(|b| *b == b',').any(|item| {
            let name = item
                .split(|b| *b == b';' || *b == b'=')
                .next()
                .unwrap_or(b"");
            name.trim_ascii().eq_ignore_ascii_case(token.as_bytes())
        })
    })
}

/// The algorithm `accept_encoding` prefers among `algorithms` (listed in
/// the server's order of preference), if it accepts one.
fn choose(algorithms: &[Algorithm], accept_encoding: &[u8]) -> Option<Algorithm> {
    let text = std::str::from_utf8(accept_encoding).ok()?;
    // (coding, weight in thousandths), as RFC 9110 §12.4.2 allows three
    // decimals.
    let weights: Vec<(&str, u16)> = text
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let coding = parts.next()?.trim();
            if coding.is_empty() {
                return None;
            }
            let mut q = 1000;
            for param in parts {
                if let Some((k, v)) = param.split_once('=')
                    && k.trim().eq_ignore_ascii_case("q")
                {
                    q = parse_q(v.trim())?;
                }
            }
            Some((coding, q))
        })
        .collect();
    let weight = |a: Algorithm| -> u16 {
        let named = weights
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(a.token()))
            .or_else(|| {
                // `x-gzip` is gzip (RFC 9110 §8.4.1.3).
                (a == Algorithm::Gzip)
                    .then(|| {
                        weights
                            .iter()
                            .find(|(c, _)| c.eq_ignore_ascii_case("x-gzip"))
                    })
                    .flatten()
            });
        match named {
            Some((_, q)) => *q,
            None => weights
                .iter()
                .find(|(c, _)| *c == "*")
                .map_or(0, |(_, q)| *q),
        }
    };
    let mut best: Option<(Algorithm, u16)> = None;
    for &a in algorithms {
        let q = weight(a);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((a, q));
        }
    }
    best.map(|(a, _)| a)
}

/// A `q` value (`0`, `0.5`, `1.000`) in thousandths; `None` if malformed.
fn parse_q(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = match int {
        "0" => format!("{frac:0<3}").parse::<u16>().ok()?,
        "1" if frac.bytes().all(|b| b == b'0') => 1000,
        _ => return None,
    };
    Some(thousandths)
}

/// A response's encoder, writing into memory that each call empties.
enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    fn new(algorithm: Algorithm, settings: &Settings) -> Encoder {
        match algorithm {
            Algorithm::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(settings.gzip_level),
            )),
            Algorithm::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                settings.brotli_level,
                BROTLI_WINDOW_BITS,
            ))),
            Algorithm::Zstd => {
                match zstd::stream::write::Encoder::new(Vec::new(), settings.zstd_level) {
                    Ok(encoder) => Encoder::Zstd(encoder),
                    // Only an allocation failure or a level zstd refuses
                    // (the config checked it): fall back to gzip.
                    Err(e) => {
                        tracing::warn!(error = %e, "zstd encoder unavailable, using gzip");
                        Encoder::new(Algorithm::Gzip, settings)
                    }
                }
            }
        }
    }

    /// Feeds `data`; what is encoded so far.
    fn write(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let out = match self {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                e.get_mut()
            }
            Encoder::Brotli(e) => {
                e.write_all(data)?;
                e.get_mut()
            }
            Encoder::Zstd(e) => {
                e.write_all(data)?;
                e.get_mut()
            }
        };
        Ok(std::mem::take(out))
    }

    /// Feeds `last` and ends the encoding; the rest of it.
    fn finish(mut self, last: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = self.write(last)?;
        let rest = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Brotli(e) => e.into_inner(),
            Encoder::Zstd(e) => e.finish()?,
        };
        out.extend_from_slice(&rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::http1::Framing;
    use crate::filter::http::HttpChain;
    use crate::filter::http::mock::{Message, exchange, request, response};
    use std::io::Read;

    fn chain(settings: Settings) -> HttpChain {
        HttpChain::new(vec![Arc::new(Compression::new(settings))])
    }

    fn text(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b"the quick brown fox jumps over the lazy dog "[i % 44])
            .collect()
    }

    /// A response of `body` in pieces of `piece` bytes, with `headers`.
    fn answer(body: &[u8], piece: usize, headers: &[(&str, &str)]) -> Message {
        let mut m = response(200, headers);
        m.body = body.chunks(piece).map(<[u8]>::to_vec).collect();
        m
    }

    fn decode(algorithm: &str, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match algorithm {
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
            other => panic!("{other}"),
        }
        out
    }

    #[test]
    fn each_algorithm_round_trips_piece_by_piece() {
        let body = text(200_000);
        for token in ["gzip", "br", "zstd"] {
            let run = exchange(
                &chain(Settings::default()),
                request("/", &[("accept-encoding", token)]),
                answer(
                    &body,
                    16 * 1024,
                    &[("content-type", "text/plain"), ("etag", "\"v1\"")],
                ),
            );
            let head = &run.client_got.head;
            assert_eq!(head.header("content-encoding"), Some(token.as_bytes()));
            assert_eq!(head.header("vary"), Some(&b"accept-encoding"[..]));
            assert_eq!(head.header("etag"), Some(&b"W/\"v1\""[..]));
            let encoded: Vec<u8> = run.client_got.body.concat();
            assert!(
                encoded.len() < body.len() / 10,
                "{token}: {}",
                encoded.len()
            );
            assert_eq!(decode(token, &encoded), body, "{token}");
        }
    }

    #[test]
    fn the_length_goes_and_the_body_is_chunked() {
        let body = text(1000);
        let mut answer = answer(
            &body,
            1000,
            &[("content-type", "text/html"), ("content-length", "1000")],
        );
        answer.head.framing = Framing::Length(1000);
        let run = exchange(
            &chain(Settings::default()),
            request("/", &[("accept-encoding", "gzip")]),
            answer,
        );
        let head = run.client_got.head;
        assert_eq!(head.header("content-length"), None);
        assert_eq!(head.framing, Framing::Chunked);
        let mut out = bytes::BytesMut::new();
        crate::codec::http1::write_response(&head, true, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
    }

    #[test]
    fn accept_encoding_weights_and_the_servers_order() {
        use Algorithm::{Brotli, Gzip, Zstd};
        let all = [Zstd, Brotli, Gzip];
        let pick = |order: &[Algorithm], ae: &str| choose(order, ae.as_bytes());
        assert_eq!(pick(&all, "gzip, deflate, br, zstd"), Some(Zstd));
        assert_eq!(pick(&[Gzip, Brotli], "br, gzip"), Some(Gzip));
        assert_eq!(pick(&all, "gzip;q=1.0, br;q=0.8"), Some(Gzip));
        assert_eq!(pick(&all, "zstd;q=0, br;q=0.5, *;q=0.1"), Some(Brotli));
        assert_eq!(pick(&all, "*"), Some(Zstd));
        assert_eq!(pick(&all, "*;q=0.2, gzip;q=0.3"), Some(Gzip));
        assert_eq!(pick(&all, "identity"), None);
        assert_eq!(pick(&all, "gzip;q=0"), None);
        assert_eq!(pick(&all, "X-GZIP"), Some(Gzip));
        assert_eq!(pick(&all, ""), None);
        assert_eq!(pick(&all, "gzip;q=2"), None, "a malformed q drops the list");
        assert_eq!(parse_q("0.125"), Some(125));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
    }

    /// What the client got for a response with `headers` (and a body of
    /// 1000 bytes of text) to a request with `accept`.
    fn outcome(method: &str, accept: &str, status: u16, headers: &[(&str, &str)]) -> Message {
        let mut req = request("/", &[("accept-encoding", accept)]);
        req.head.method = method.into();
        let mut resp = answer(&text(1000), 1000, headers);
        resp.head.status = status;
        exchange(&chain(Settings::default()), req, resp).client_got
    }

    #[test]
    fn what_is_left_alone() {
        let plain = [("content-type", "text/plain")];
        let untouched = |m: &Message| {
            assert_eq!(m.head.header("content-encoding"), None, "{:?}", m.head);
            assert_eq!(m.body.concat(), text(1000));
        };
        untouched(&outcome("GET", "identity", 200, &plain));
        untouched(&outcome("HEAD", "gzip", 200, &plain));
        let mut old = request("/", &[("accept-encoding", "gzip")]);
        old.head.minor = 0;
        let run = exchange(
            &chain(Settings::default()),
            old,
            answer(&text(1000), 1000, &plain),
        );
        untouched(&run.client_got);
        untouched(&outcome("GET", "gzip", 204, &plain));
        untouched(&outcome("GET", "gzip", 304, &plain));
        untouched(&outcome(
            "GET",
            "gzip",
            200,
            &[("content-type", "image/png")],
        ));
        untouched(&outcome("GET", "gzip", 200, &[]));
        untouched(&outcome(
            "GET",
            "gzip",
            200,
            &[("content-type", "text/plain"), ("content-length", "20")],
        ));
        untouched(&outcome(
            "GET",
            "gzip",
            200,
            &[
                ("content-type", "text/plain"),
                ("cache-control", "public, no-transform"),
            ],
        ));
        let encoded = outcome(
            "GET",
            "gzip",
            200,
            &[("content-type", "text/plain"), ("content-encoding", "br")],
        );
        assert_eq!(encoded.head.header("content-encoding"), Some(&b"br"[..]));
        assert_eq!(encoded.body.concat(), text(1000));
        assert_eq!(encoded.head.header("vary"), None, "not compressible at all");
        // Left alone, but varies by accept-encoding all the same.
        let identity = outcome("GET", "identity", 200, &plain);
        assert_eq!(identity.head.header("vary"), Some(&b"accept-encoding"[..]));
    }

    #[test]
    fn vary_is_extended_once_and_weak_etags_stay() {
        let got = outcome(
            "GET",
            "br",
            200,
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("vary", "origin"),
                ("etag", "W/\"x\""),
            ],
        );
        assert_eq!(got.head.header("content-encoding"), Some(&b"br"[..]));
        assert_eq!(
            got.head.header("vary"),
            Some(&b"origin, accept-encoding"[..])
        );
        assert_eq!(got.head.header("etag"), Some(&b"W/\"x\""[..]));
        let again = outcome(
            "GET",
            "br",
            200,
            &[("content-type", "text/css"), ("vary", "Accept-Encoding")],
        );
        assert_eq!(again.head.header("vary"), Some(&b"Accept-Encoding"[..]));
    }

    #[test]
    fn unannounced_trailers_cut_a_compressed_response() {
        let mut resp = answer(&text(1000), 100, &[("content-type", "text/plain")]);
        resp.trailers = Some(vec![("x-sum".into(), b"1".to_vec())]);
        let run = exchange(
            &chain(Settings::default()),
            request("/", &[("accept-encoding", "gzip")]),
            resp,
        );
        // The mock replaces the response; the real exchange cuts it.
        assert_eq!(run.client_got.head.status, 500);
        // Announced: not compressed at all.
        let mut resp = answer(
            &text(1000),
            100,
            &[("content-type", "text/plain"), ("trailer", "x-sum")],
        );
        resp.trailers = Some(vec![("x-sum".into(), b"1".to_vec())]);
        let run = exchange(
            &chain(Settings::default()),
            request("/", &[("accept-encoding", "gzip")]),
            resp,
        );
        assert_eq!(run.client_got.head.header("content-encoding"), None);
        assert_eq!(run.client_got.body.concat(), text(1000));
    }
}
