//! The admin endpoint's HTTP/1.1 messages: a request parsed from its head
//! (sans-I/O), a response encoded.

/// The largest request head accepted: a scraper's or a browser's GET is a
/// few hundred bytes, a browser with cookies a few KiB.
pub const MAX_HEAD: usize = 16 * 1024;

/// The largest request body read (and ignored: the admin API takes its
/// parameters in the query). Read rather than left unread, because closing
/// a socket with unread bytes sends a reset that can destroy the response
/// before the client reads it.
pub const MAX_BODY: usize = 16 * 1024;

/// A parsed request: what the router needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub accept: Option<String>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Extra header lines (`Allow: POST`), each without its CRLF.
    pub headers: Vec<String>,
}

impl Response {
    pub fn new(code: u16, content_type: &'static str, body: String) -> Response {
        Response {
            code,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    pub fn text(code: u16, body: impl Into<String>) -> Response {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Response::new(code, "text/plain; charset=utf-8", body)
    }

    pub fn json(code: u16, value: &serde_json::Value) -> Response {
        match serde_json::to_string_pretty(value) {
            Ok(json) => Response::new(code, "application/json", json + "\n"),
            Err(e) => Response::text(500, format!("encode JSON: {e}")),
        }
    }

    /// An error as JSON (`{"error": ...}`) or text, as the client asked.
    pub fn error(code: u16, message: &str, text: bool) -> Response {
        if text {
            Response::text(code, message)
        } else {
            Response::json(code, &serde_json::json!({ "error": message }))
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let reason = match self.code {
            200 => "OK",
            202 => "Accepted",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            413 => "Content Too Large",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n",
            self.code,
            self.content_type,
            self.body.len()
        );
        for header in &self.headers {
            head.push_str(header);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

/// Parses a complete head: the request, the head's length and the body's
/// (`Content-Length`; chunked bodies are refused). `Ok(None)` when more
/// bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize, usize)>, Response> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Response::text(400, format!("bad request: {e}"))),
    };
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::to_string)
    };
    if header("transfer-encoding").is_some() {
        return Err(Response::text(
            400,
            "bad request: no request body is expected (no Transfer-Encoding)",
        ));
    }
    let body_len = match header("content-length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| Response::text(400, "bad request: Content-Length"))?,
    };
    let target = parsed.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = Request {
        method: parsed.method.unwrap_or_default().to_string(),
        path: path.to_string(),
        query: parse_query(query),
        authorization: header("authorization"),
        accept: header("accept"),
    };
    Ok(Some((request, head_len, body_len)))
}

/// `a=1&b=x%3Dy` → `[("a", "1"), ("b", "x=y")]`; `+` is a space.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_split_and_decoded() {
        assert_eq!(
            parse_query("level=baton%3Ddebug%2Cwarn&format=text&x&y=a+b&bad=%zz"),
            vec![
                ("level".into(), "baton=debug,warn".into()),
                ("format".into(), "text".into()),
                ("x".into(), "".into()),
                ("y".into(), "a b".into()),
                ("bad".into(), "%zz".into()),
            ]
        );
    }

    #[test]
    fn a_head_gives_the_request_and_the_body_length() {
        let raw = b"POST /logging?level=debug HTTP/1.1\r\nHost: x\r\n\
                    Authorization: Bearer t\r\nContent-Length: 3\r\n\r\nabc";
        let (request, head, body) = parse_head(raw).unwrap().unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/logging");
        assert_eq!(request.param("level"), Some("debug"));
        assert_eq!(request.authorization.as_deref(), Some("Bearer t"));
        assert_eq!((head, body), (raw.len() - 3, 3));
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost:").unwrap(), None);
        assert_eq!(
            parse_head(b"GET\0 / HTTP/1.1\r\n\r\n").unwrap_err().code,
            400
        );
        let chunked = b"POST /drain HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(chunked).unwrap_err().code, 400);
    }
}
