//! `headers`: an HTTP filter that sets, appends and removes request and
//! response headers (issue 15's header manipulation, without the
//! placeholders yet).
//!
//! Edits apply in the order given, request edits to the request head and
//! response edits to the response head — the upstream's or a local
//! response from a filter after this one. Framing and connection headers
//! cannot be edited (see [`crate::filter::http`]); the edits are checked
//! when the filter is built, so a request never meets a bad one.

use std::sync::Arc;

use crate::filter::http::{
    Action, HeaderBlock, HeaderError, HttpFilter, HttpStreamFilter, RequestHead, ResponseHead,
};
use crate::filter::{ConnInfo, Mobility};

/// One header edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Replace every value (or add it).
    Set(String, Vec<u8>),
    /// Add a value after any others.
    Append(String, Vec<u8>),
    /// Remove every value.
    Remove(String),
}

impl Edit {
    fn apply(&self, block: &mut dyn HeaderBlock) -> Result<(), HeaderError> {
        match self {
            Edit::Set(name, value) => block.set(name, value),
            Edit::Append(name, value) => block.append(name, value),
            Edit::Remove(name) => block.remove(name).map(drop),
        }
    }
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
}

impl Headers {
    /// Checks every edit (on a scratch block) and builds the filter.
    pub(crate) fn new(request: Vec<Edit>, response: Vec<Edit>) -> Result<Headers, HeaderError> {
        let mut scratch: Vec<(String, Vec<u8>)> = Vec::new();
        for edit in request.iter().chain(&response) {
            edit.apply(&mut scratch)?;
        }
        Ok(Headers {
            edits: Arc::new(Edits { request, response }),
        })
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

    fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(Stream {
            edits: Arc::clone(&self.edits),
        })
    }
}

struct Stream {
    edits: Arc<Edits>,
}

/// Applies `edits`; they were checked when the filter was built, so none
/// can fail here (a failure would leave the head as it was and be logged).
fn apply(edits: &[Edit], block: &mut dyn HeaderBlock) {
    for edit in edits {
        if let Err(e) = edit.apply(block) {
            tracing::warn!(error = %e, "header edit failed");
        }
    }
}

impl HttpStreamFilter for Stream {
    fn on_request_headers(&mut self, head: &mut dyn RequestHead, _end_of_stream: bool) -> Action {
        apply(&self.edits.request, head);
        Action::Continue
    }

    fn on_response_headers(&mut self, head: &mut dyn ResponseHead, _end_of_stream: bool) -> Action {
        apply(&self.edits.response, head);
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::http::HttpChain;
    use crate::filter::http::mock::{exchange, request, response};

    fn set(name: &str, value: &str) -> Edit {
        Edit::Set(name.into(), value.as_bytes().to_vec())
    }

    #[test]
    fn adds_and_removes_headers_both_ways() {
        let filter = Headers::new(
            vec![
                set("x-env", "prod"),
                Edit::Remove("x-debug".into()),
                Edit::Append("via".into(), b"baton".to_vec()),
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
