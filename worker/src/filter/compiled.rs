//! HTTP filters compiled into a worker of one's own (issue 15 item 5):
//! how someone outside the project adds a filter without forking baton.
//!
//! A filter is a type implementing [`HttpFilter`] (made once per
//! listener or route, from its config string) whose
//! [`HttpFilter::stream`] makes an [`HttpStreamFilter`] for each request:
//! callbacks on the request's head, body chunks and trailers, then the
//! response's, each continuing (with whatever it changed) or answering
//! with a [`LocalResponse`](crate::filter::http::LocalResponse). A binary
//! registers its filters by name, then runs the worker as `baton-worker`
//! does:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     // baton_worker::filter::compiled::register_http("my_filter", MyFilter::from_config);
//!     baton_worker::cli::main(std::env::args_os())
//! }
//! ```
//!
//! The supervisor runs it when the config names it
//! (`[supervisor] worker_binary = "…"`), and a listener or route uses a
//! filter as `filters = [{ compiled = "my_filter", config = "…" }]`.
//! `baton check` runs the worker binary's own check, so a name the binary
//! did not register, or a config its factory refuses, is refused there —
//! and at an upgrade, before the running generation is touched.
//!
//! The worker's `examples/custom_filter.rs` is a whole one, to copy.
//!
//! A compiled filter moves with its connection at an upgrade when it says
//! [`Mobility::Moves`](crate::filter::Mobility): its per-request state
//! ends with the request, and the next generation builds the filter
//! afresh from the (new) config.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::filter::http::HttpFilter;

/// Makes the filter from the `config` string its entry gives (empty when
/// it gives none); an `Err` is the message `baton check` shows.
pub type HttpFactory = fn(config: &str) -> Result<Arc<dyn HttpFilter>, String>;

static HTTP: Mutex<BTreeMap<String, HttpFactory>> = Mutex::new(BTreeMap::new());

/// Registers an HTTP filter under `name` (the config's `compiled = "name"`).
/// Call it before [`crate::cli::main`]; a second registration of a name
/// replaces the first.
pub fn register_http(name: &str, factory: HttpFactory) {
    HTTP.lock().insert(name.to_string(), factory);
}

/// Why a compiled filter could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompiledError {
    #[error(
        "no filter {name:?} is compiled into this worker (registered: {known}); \
         is `supervisor.worker_binary` the binary that registers it?"
    )]
    Unknown { name: String, known: String },
    #[error("compiled filter {name:?}: {message}")]
    Refused { name: String, message: String },
}

/// The filter registered as `name`, made from `config`.
pub(crate) fn http(name: &str, config: &str) -> Result<Arc<dyn HttpFilter>, CompiledError> {
    let factory = {
        let registry = HTTP.lock();
        match registry.get(name) {
            Some(factory) => *factory,
            None => {
                let known: Vec<&str> = registry.keys().map(String::as_str).collect();
                return Err(CompiledError::Unknown {
                    name: name.to_string(),
                    known: if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    },
                });
            }
        }
    };
    factory(config).map_err(|message| CompiledError::Refused {
        name: name.to_string(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::http::{Action, HttpStreamFilter, RequestHead};
    use crate::filter::{ConnInfo, Mobility};

    #[derive(Debug)]
    struct Tag(String);

    struct TagStream(String);

    impl HttpFilter for Tag {
        fn name(&self) -> &'static str {
            "tag"
        }

        fn mobility(&self) -> Mobility {
            Mobility::Moves
        }

        fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
            Box::new(TagStream(self.0.clone()))
        }
    }

    impl HttpStreamFilter for TagStream {
        fn on_request_headers(&mut self, head: &mut dyn RequestHead, _end: bool) -> Action {
            let _ = head.set("x-tag", self.0.as_bytes());
            Action::Continue
        }
    }

    fn tag(config: &str) -> Result<Arc<dyn HttpFilter>, String> {
        if config.is_empty() {
            return Err("say what to tag with".into());
        }
        Ok(Arc::new(Tag(config.to_string())))
    }

    #[test]
    fn a_registered_filter_is_made_from_its_config_and_others_are_refused() {
        register_http("tag_for_test", tag);
        assert_eq!(http("tag_for_test", "blue").unwrap().name(), "tag");
        let refused = http("tag_for_test", "").unwrap_err().to_string();
        assert!(refused.contains("say what to tag with"), "{refused}");
        let unknown = http("nobody", "").unwrap_err().to_string();
        assert!(unknown.contains("tag_for_test"), "{unknown}");
    }
}
