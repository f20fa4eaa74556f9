//! `headers`: an HTTP filter that sets, appends and removes request and
//! response headers (issue 15's header manipulation).
//!
//! Edits apply in the order given, request edits to the request head and
//! response edits to the response head — the upstream's or a local
//! response from a filter after this one. Framing and connection headers
//! cannot be edited (see [`crate::filter::http`]); the edits are checked
//! when the filter is built, so a request never meets a bad one.
//!
//! Values may hold placeholders ([`Template`], parsed when the config was
//! read), expanded per request: the client's address, a request header,
//! the client's protocol. All of a request's values are expanded when its
//! head reaches the filter, before its own edits change it (so
//! `%REQ(name)%` is the header as it arrived here), the response's too
//! (a response has no request head to look at). A value without
//! placeholders costs nothing per request.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use baton_config::filter::Piece;
pub(crate) use baton_config::filter::Template;

use crate::filter::http::{
    Action, HeaderBlock, HeaderError, HttpFilter, HttpStreamFilter, RequestHead, ResponseHead,
};
use crate::filter::{ConnInfo, Mobility};

/// One header edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Replace every value (or add it).
    Set(String, Template),
    /// Add a value after any others.
    Append(String, Template),
    /// Remove every value.
    Remove(String),
}

impl Edit {
    pub(crate) fn template(&self) -> Option<&Template> {
        match self {
            Edit::Set(_, t) | Edit::Append(_, t) => Some(t),
            Edit::Remove(_) => None,
        }
    }

    /// Applies the edit with `value` (its template expanded).
    fn apply(&self, block: &mut dyn HeaderBlock, value: &[u8]) -> Result<(), HeaderError> {
        match self {
            Edit::Set(name, _) => block.set(name, value),
            Edit::Append(name, _) => block.append(name, value),
            Edit::Remove(name) => block.remove(name).map(drop),
        }
    }
}

/// What `%REQ(name)%` and `%PROTOCOL%` read: an HTTP request head, or
/// an RPC request's headers (`rpc_headers`).
pub(crate) trait Placeholders {
    /// The first value of header `name` (given lowercase).
    fn header(&self, name: &str) -> Option<&[u8]>;
    fn protocol(&self) -> &str;
}

impl<T: RequestHead + ?Sized> Placeholders for T {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name)
    }

    fn protocol(&self) -> &str {
        RequestHead::protocol(self)
    }
}

/// What placeholders expand to for one request.
pub(crate) struct Context<'a, P: ?Sized> {
    pub(crate) source: Option<SocketAddr>,
    pub(crate) request: &'a P,
}

/// `template` for one request (borrowed when it has no placeholder).
pub(crate) fn expand<'t, P: Placeholders + ?Sized>(
    template: &'t Template,
    ctx: &Context<'_, P>,
) -> Cow<'t, [u8]> {
    if let Some(literal) = template.literal() {
        return Cow::Borrowed(literal.as_bytes());
    }
    let mut out = Vec::new();
    for piece in template.pieces() {
        match piece {
            Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
            Piece::RemoteAddress => {
                if let Some(addr) = ctx.source {
                    let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                    out.extend_from_slice(addr.to_string().as_bytes());
                }
            }
            Piece::RemoteAddressWithoutPort => {
                if let Some(addr) = ctx.source {
                    out.extend_from_slice(addr.ip().to_canonical().to_string().as_bytes());
                }
            }
            Piece::Req(name) => out.extend_from_slice(ctx.request.header(name).unwrap_or_default()),
            Piece::Protocol => out.extend_from_slice(ctx.request.protocol().as_bytes()),
        }
    }
    Cow::Owned(out)
}

/// Each edit's value for one request (empty for a removal).
fn values<'t, P: Placeholders + ?Sized>(
    edits: &'t [Edit],
    ctx: &Context<'_, P>,
) -> Vec<Cow<'t, [u8]>> {
    edits
        .iter()
        .map(|e| {
            e.template()
                .map_or(Cow::Borrowed(&b""[..]), |t| expand(t, ctx))
        })
        .collect()
}

/// Header edits for requests and responses.
#[derive(Debug, Clone)]
pub(crate) struct Headers {
    edits: Arc<Edits>,
}

#[derive(Debug)]
struct Edits {
    request: Vec<Edit>,
    response: Vec<Edit>,
    /// Whether a response value has a placeholder (expanded with the
    /// request).
    response_expands: bool,
}

impl Headers {
    /// Checks every edit (on a scratch block, with its placeholders
    /// expanded to nothing: what they expand to is a valid value) and
    /// builds the filter.
    pub(crate) fn new(request: Vec<Edit>, response: Vec<Edit>) -> Result<Headers, HeaderError> {
        let mut scratch: Vec<(String, Vec<u8>)> = Vec::new();
        let nothing: Vec<(String, Vec<u8>)> = Vec::new();
        let ctx = Context {
            source: None,
            request: &Probe(nothing),
        };
        for edit in request.iter().chain(&response) {
            let value = edit
                .template()
                .map_or(Cow::Borrowed(&b""[..]), |t| expand(t, &ctx));
            edit.apply(&mut scratch, &value)?;
        }
        let response_expands = response
            .iter()
            .any(|e| e.template().is_some_and(|t| t.literal().is_none()));
        Ok(Headers {
            edits: Arc::new(Edits {
                request,
                response,
                response_expands,
            }),
        })
    }
}

/// An empty request head, to check edits with.
struct Probe(Vec<(String, Vec<u8>)>);

impl HeaderBlock for Probe {
    fn get(&self, name: &str) -> Option<&[u8]> {
        HeaderBlock::get(&self.0, name)
    }
    fn set(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
        HeaderBlock::set(&mut self.0, name, value)
    }
    fn append(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
        HeaderBlock::append(&mut self.0, name, value)
    }
    fn remove(&mut self, name: &str) -> Result<usize, HeaderError> {
        HeaderBlock::remove(&mut self.0, name)
    }
    fn pairs(&self) -> Vec<(String, Vec<u8>)> {
        HeaderBlock::pairs(&self.0)
    }
}

impl RequestHead for Probe {
    fn method(&self) -> &str {
        "GET"
    }
    fn path(&self) -> &str {
        "/"
    }
}

impl HttpFilter for Headers {
    fn name(&self) -> &'static str {
        "headers"
    }

    /// Its edits come from config; nothing is kept per connection.
    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn stream(&self, conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(Stream {
            edits: Arc::clone(&self.edits),
            source: conn.source,
            response_values: None,
        })
    }
}

struct Stream {
    edits: Arc<Edits>,
    source: Option<SocketAddr>,
    /// The response's values, expanded with the request (when one has a
    /// placeholder).
    response_values: Option<Vec<Vec<u8>>>,
}

/// Applies `edits` with their `values`; they were checked when the filter
/// was built, so none can fail here (a failure would leave the head as it
/// was and be logged).
fn apply(edits: &[Edit], values: &[impl AsRef<[u8]>], block: &mut dyn HeaderBlock) {
    for (edit, value) in edits.iter().zip(values) {
        if let Err(e) = edit.apply(block, value.as_ref()) {
            tracing::warn!(error = %e, "header edit failed");
        }
    }
}

impl HttpStreamFilter for Stream {
    fn on_request_headers(&mut self, head: &mut dyn RequestHead, _end_of_stream: bool) -> Action {
        let edits = Arc::clone(&self.edits);
        let (request, response) = {
            let ctx = Context {
                source: self.source,
                request: &*head,
            };
            let response = edits.response_expands.then(|| {
                values(&edits.response, &ctx)
                    .into_iter()
                    .map(Cow::into_owned)
                    .collect()
            });
            (values(&edits.request, &ctx), response)
        };
        self.response_values = response;
        apply(&edits.request, &request, head);
        Action::Continue
    }

    fn on_response_headers(&mut self, head: &mut dyn ResponseHead, _end_of_stream: bool) -> Action {
        let edits = &self.edits.response;
        match &self.response_values {
            Some(values) => apply(edits, values, head),
            None => {
                // Literal values (or no request seen): nothing to expand.
                let literal: Vec<&[u8]> = edits
                    .iter()
                    .map(|e| {
                        e.template()
                            .and_then(Template::literal)
                            .unwrap_or_default()
                            .as_bytes()
                    })
                    .collect();
                apply(edits, &literal, head);
            }
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::http::HttpChain;
    use crate::filter::http::mock::{exchange, request, response};

    fn set(name: &str, value: &str) -> Edit {
        Edit::Set(name.into(), value.parse().unwrap())
    }

    #[test]
    fn adds_and_removes_headers_both_ways() {
        let filter = Headers::new(
            vec![
                set("x-env", "prod"),
                Edit::Remove("x-debug".into()),
                Edit::Append("via".into(), "baton".parse().unwrap()),
            ],
            vec![Edit::Remove("server".into()), set("x-served-by", "baton")],
        )
        .unwrap();
        let chain = HttpChain::new(vec![Arc::new(filter)]);
        let run = exchange(
            &chain,
            request(
                "/p",
                &[("x-debug", "1"), ("X-Env", "dev"), ("via", "1.1 edge")],
            ),
            response(200, &[("server", "nginx")]),
        );
        let upstream = run.upstream_saw.unwrap().head.headers;
        assert_eq!(
            upstream,
            [
                ("X-Env".to_string(), b"prod".to_vec()),
                ("via".to_string(), b"1.1 edge".to_vec()),
                ("via".to_string(), b"baton".to_vec()),
            ]
        );
        assert_eq!(
            run.client_got.head.headers,
            [("x-served-by".to_string(), b"baton".to_vec())]
        );
    }

    #[test]
    fn bad_edits_are_refused_when_built() {
        assert_eq!(
            Headers::new(vec![set("content-length", "1")], vec![]).unwrap_err(),
            HeaderError::Reserved("content-length".into())
        );
        assert_eq!(
            Headers::new(vec![], vec![set("x-a", "1\r\nx-b: 2")]).unwrap_err(),
            HeaderError::Value("x-a".into())
        );
    }

    #[test]
    fn placeholders_expand_per_request_both_ways() {
        let filter = Headers::new(
            vec![
                set("x-client", "%DOWNSTREAM_REMOTE_ADDRESS%"),
                set("x-client-ip", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
                set("x-user", "user=%REQ(X-User)%"),
                set("x-proto", "%PROTOCOL%"),
            ],
            vec![set("x-echo", "%REQ(x-user)%/%PROTOCOL%")],
        )
        .unwrap();
        let chain = HttpChain::new(vec![Arc::new(filter)]);
        // The mock's client is 10.0.0.1:4000.
        let run = exchange(
            &chain,
            request("/", &[("x-user", "ann")]),
            response(200, &[]),
        );
        let upstream = run.upstream_saw.unwrap().head;
        for (name, value) in [
            ("x-client", "10.0.0.1:4000"),
            ("x-client-ip", "10.0.0.1"),
            ("x-user", "user=ann"),
            ("x-proto", "HTTP/1.1"),
        ] {
            assert_eq!(upstream.header(name), Some(value.as_bytes()), "{name}");
        }
        assert_eq!(
            run.client_got.head.header("x-echo"),
            Some(&b"ann/HTTP/1.1"[..]),
            "the request's header, on the response"
        );
        // A missing header expands to nothing.
        let run = exchange(&chain, request("/", &[]), response(200, &[]));
        assert_eq!(
            run.upstream_saw.unwrap().head.header("x-user"),
            Some(&b"user="[..])
        );
    }

    #[test]
    fn the_exchange_names_the_protocol() {
        let filter = Headers::new(vec![set("x-proto", "%PROTOCOL%")], vec![]).unwrap();
        let chain = HttpChain::new(vec![Arc::new(filter)]);
        let conn = ConnInfo {
            listener: Arc::from("l"),
            source: None,
            local: None,
        };
        let mut stream = chain.stream(&conn);
        stream.set_protocol("HTTP/2");
        let mut head = request("/", &[]).head;
        let _ = stream.request_headers(&mut head, true);
        assert_eq!(head.header("x-proto"), Some(&b"HTTP/2"[..]));
    }

    #[test]
    fn works_on_the_http_crate_heads_too() {
        let filter = Headers::new(vec![set("x-env", "prod")], vec![]).unwrap();
        let chain = HttpChain::new(vec![Arc::new(filter)]);
        let conn = ConnInfo {
            listener: Arc::from("l"),
            source: None,
            local: None,
        };
        let (mut parts, ()) = ::http::Request::get("/").body(()).unwrap().into_parts();
        let mut stream = chain.stream(&conn);
        assert!(matches!(
            stream.request_headers(&mut parts, true),
            Action::Continue
        ));
        assert_eq!(parts.headers["x-env"], "prod");
    }
}
