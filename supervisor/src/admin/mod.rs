//! The admin endpoint (`[admin] address`, and `[admin] control_address`
//! when configured), served by the supervisor so that it never blinks
//! during an upgrade: it reads what the supervisor publishes (status,
//! metrics, the config in force, the upgrade history), never a worker.
//!
//! # Endpoints
//!
//! | method | path | answers |
//! |---|---|---|
//! | GET | `/` | the status page: one self-contained HTML page (`page.html`) that refreshes itself from the JSON below |
//! | GET | `/metrics` | Prometheus text format ([`crate::metrics`]) |
//! | GET | `/status` | the same JSON as `baton status --json` |
//! | GET | `/ready` | 200 while a generation serves, 503 otherwise |
//! | GET | `/config_dump` | the config in force (the current release's), secrets redacted; with `[xds]`, its `xds` key lists the resources accepted from the control plane, each with its version, and each type's last version (secrets by name only) |
//! | GET | `/listeners` | each listener: name, address, protocol, connections and requests from the metrics |
//! | GET | `/clusters` | each cluster and its endpoints: weight, health, ejected, in flight, and the endpoints' metrics |
//! | GET | `/generations` | the workers alive, and the last [`HISTORY`] upgrades |
//! | GET | `/logging` | the log filter in force (supervisor and workers) |
//! | POST | `/logging?level=FILTER` | **mutating**: sets it for the supervisor (at once) and every worker (as its ctrl channel delivers it: milliseconds later) |
//! | POST | `/drain` | **mutating**: a graceful stop, exactly as `baton stop` |
//!
//! JSON by default; `?format=text` or `Accept: text/plain` (without
//! `application/json`) gives text for a person on `/config_dump` (TOML),
//! `/listeners`, `/clusters`, `/generations` and `/logging`. A query
//! parameter's value is percent-decoded (`level=baton%3Ddebug`).
//! `/drain?listener=NAME` (one listener) needs the worker to stop
//! accepting on one socket, which it cannot yet: it is answered 501.
//!
//! # Security model
//!
//! Everything on `[admin] address` that only reads is open to whoever can
//! connect: bind it to loopback or a private network. Nothing read-only
//! shows a secret (see *Redaction*). The mutating calls change the running
//! proxy, and are allowed only
//!
//! * with `Authorization: Bearer <[admin] token>`, on either address (the
//!   token is compared in constant time: [`auth`]), or
//! * on `[admin] control_address`, a second listener that exists only when
//!   configured and is meant to be guarded otherwise (loopback, a private
//!   network, a firewall): there the token is not needed.
//!
//! Otherwise they are refused with 403 and a message that says which of
//! the two is missing. The token in force is the current release's: an
//! upgrade whose config changes it rotates it. The two addresses are bound
//! once, when the supervisor starts (it never blinks); changing them takes
//! a restart of the supervisor. A mutating call must be a POST (a GET of `/drain`
//! is 405), so that a link, a prefetch or an `<img>` cannot trigger it;
//! `GET /logging` only reads. There is no TLS here: send the token only
//! over a network you trust, or use `control_address` on loopback.
//!
//! # Redaction
//!
//! `/config_dump` shows every key of the config, but replaces with
//! `"<redacted>"` the values of keys that hold credentials: `token`,
//! `password`, `passwd`, `secret`, `credentials`, `authorization`,
//! `api_key`, and any key ending in `_token`, `_password`, `_secret` or
//! `_api_key`; any string holding PEM material (`-----BEGIN`); and the
//! password of any URL with user info (`scheme://user:pw@host`). File
//! paths stay (a TLS `key` is the path of a private key, not the key: the
//! file itself is never read here).
//! See [`redact`].
//!
//! # HTTP
//!
//! A deliberately small HTTP/1.1 server ([`server`]): one request per
//! connection (`Connection: close`), a request head of at most
//! [`http::MAX_HEAD`] bytes, a body (ignored: parameters travel in the
//! query) of at most [`http::MAX_BODY`], a timeout for slow clients.
//! Scrapers, curl and a browser need no more, and the supervisor stays
//! small.
//!
//! # Layout
//!
//! * [`server`] — accepting, reading a request, writing a response;
//! * [`http`] — the request parsed from its head, the response encoded;
//! * [`auth`] — who may call the mutating endpoints;
//! * [`router`] — path and method to handler;
//! * [`api`] — the JSON and text of each endpoint;
//! * [`redact`] — the config's secrets out of `/config_dump`;
//! * `page.html` — the status page, served as is.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::control::Command;
use crate::control::proto::{Status, UpgradeReport};
use crate::logging::LogLevel;
use crate::metrics::MetricsStore;

pub(crate) mod api;
pub(crate) mod auth;
pub(crate) mod http;
pub(crate) mod redact;
pub(crate) mod router;
pub(crate) mod server;

pub(crate) use auth::Access;
pub(crate) use server::serve;

/// How many finished upgrades `/generations` remembers: enough for a day
/// of deploys and the page's timeline, bounded so that a supervisor that
/// runs for months (and a SIGHUP loop) does not grow.
pub(crate) const HISTORY: usize = 50;

/// What the admin endpoint reads.
#[derive(Debug, Clone)]
pub(crate) struct AdminState {
    pub metrics: Arc<Mutex<MetricsStore>>,
    pub status: watch::Receiver<Status>,
    /// The config in force and the upgrade history.
    pub published: watch::Receiver<Published>,
    pub log: Arc<LogLevel>,
    /// The main loop's command queue, as the control socket feeds it:
    /// `/drain` asks for a stop there.
    pub commands: mpsc::Sender<Command>,
}

/// What the supervisor publishes for the admin endpoint besides its status.
#[derive(Debug, Clone, Default)]
pub(crate) struct Published {
    /// The current release's config source (a path or `<embedded default>`).
    pub config_name: String,
    /// Its text, as the current generation received it.
    pub config_text: String,
    /// Its `[admin] token`, if any: a token rotated by an upgrade's new
    /// config takes effect with it.
    pub token: Option<Arc<str>>,
    /// With `[xds]`: the resources in force and their versions
    /// (the supervisor's xDS module), for `/config_dump`.
    pub xds: Option<serde_json::Value>,
    /// The last [`HISTORY`] upgrades and rollbacks, oldest first.
    pub history: VecDeque<UpgradeRecord>,
}

/// One finished upgrade, for `/generations` and the page's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct UpgradeRecord {
    /// When it was triggered, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    #[serde(flatten)]
    pub report: UpgradeReport,
}

impl Published {
    /// Remembers a finished upgrade, forgetting the oldest past [`HISTORY`].
    pub(crate) fn record(&mut self, record: UpgradeRecord) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(record);
    }
}
