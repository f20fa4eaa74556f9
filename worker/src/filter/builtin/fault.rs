//! `fault`: an HTTP filter that injects faults — Envoy's fault injection
//! filter: it delays requests, aborts them with a status, or both (the
//! delay first), each for a share of the requests, or as a request asks.
//!
//! * `delay = { duration, percentage }`: the request waits `duration`
//!   before it goes on (to the filters after this one, routing, the
//!   upstream) — an [`Action::Delay`] the exchange waits out;
//! * `abort = { status, percentage }`: the request is answered locally
//!   with `status` (`fault filter abort`, Envoy's body) and never reaches
//!   the upstream;
//! * `header_control = true` (opt-in: otherwise any client could slow
//!   its own requests down through the proxy): a request's
//!   `x-baton-fault-delay: <milliseconds>` delays it that long (at most
//!   [`MAX_HEADER_DELAY`]) and `x-baton-fault-abort: <status>` aborts it
//!   with that status (200 to 599), whatever the percentages; a value
//!   that does not parse is ignored. Envoy's `x-envoy-fault-delay-request`
//!   and `x-envoy-fault-abort-request`, renamed.
//!
//! Each request rolls its own dice (a percentage of 30 delays about 30 in
//! 100 requests); 100 always, 0 never. The filter keeps what it decided
//! for a request in its stream and nothing per connection: it moves.

use std::sync::Arc;
use std::time::Duration;

use baton_config::filter::{FaultAbort, FaultDelay};

use crate::filter::http::{Action, HttpFilter, HttpStreamFilter, LocalResponse, RequestHead};
use crate::filter::{ConnInfo, Mobility};

/// The longest delay a request's header may ask for. Why: the header is
/// for tests, and a delay holds the request and its connection; a minute
/// is longer than any client timeout a test means to trip.
pub(crate) const MAX_HEADER_DELAY: Duration = Duration::from_secs(60);

/// The header that asks for an abort, with its status.
const ABORT_HEADER: &str = "x-baton-fault-abort";
/// The header that asks for a delay, in milliseconds.
const DELAY_HEADER: &str = "x-baton-fault-delay";

/// Whether a request falls in `percentage` (0 to 100) of them.
pub(crate) fn roll(percentage: u8) -> bool {
    match percentage {
        0 => false,
        100.. => true,
        // The modulo's bias is under one in forty million.
        p => rand::random::<u32>() % 100 < u32::from(p),
    }
}

/// Delays and aborts requests.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    settings: Arc<Settings>,
}

#[derive(Debug)]
struct Settings {
    abort: Option<FaultAbort>,
    delay: Option<FaultDelay>,
    header_control: bool,
}

impl Fault {
    pub(crate) fn new(
        abort: Option<FaultAbort>,
        delay: Option<FaultDelay>,
        header_control: bool,
    ) -> Fault {
        Fault {
            settings: Arc::new(Settings {
                abort,
                delay,
                header_control,
            }),
        }
    }
}

impl HttpFilter for Fault {
    fn name(&self) -> &'static str {
        "fault"
    }

    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(FaultStream {
            settings: Arc::clone(&self.settings),
            decided: false,
            abort: None,
        })
    }
}

/// One request's faults.
struct FaultStream {
    settings: Arc<Settings>,
    /// Whether the request's faults are chosen (the second call, after a
    /// delay, only carries out the abort).
    decided: bool,
    abort: Option<u16>,
}

impl FaultStream {
    /// The request's delay, and (kept for after it) its abort.
    fn decide(&mut self, head: &dyn RequestHead) -> Option<Duration> {
        let settings = &self.settings;
        let asked = |name: &str| -> Option<u64> {
            let value = head.get(name)?;
            std::str::from_utf8(value).ok()?.trim().parse().ok()
        };
        let by_header = |name| settings.header_control.then(|| asked(name)).flatten();
        self.abort = match by_header(ABORT_HEADER) {
            Some(status) if (200..=599).contains(&status) => u16::try_from(status).ok(),
            _ => settings
                .abort
                .filter(|a| roll(a.percentage))
                .map(|a| a.status),
        };
        match by_header(DELAY_HEADER) {
            Some(ms) => Some(Duration::from_millis(ms).min(MAX_HEADER_DELAY)),
            None => settings
                .delay
                .filter(|d| roll(d.percentage))
                .map(|d| d.duration),
        }
    }
}

impl HttpStreamFilter for FaultStream {
    fn on_request_headers(&mut self, head: &mut dyn RequestHead, _end_of_stream: bool) -> Action {
        if !std::mem::replace(&mut self.decided, true)
            && let Some(wait) = self.decide(head).filter(|d| !d.is_zero())
        {
            return Action::Delay(wait);
        }
        let Some(status) = self.abort.take() else {
            return Action::Continue;
        };
        match LocalResponse::new(status, &b"fault filter abort\n"[..]) {
            Ok(answer) => Action::Respond(Box::new(answer)),
            // The config and the header check kept it to 200..=599.
            Err(e) => {
                tracing::error!(error = %e, "fault: could not build its answer");
                Action::Continue
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::http::HttpChain;
    use crate::filter::http::mock::{Run, exchange, request, response};

    fn run(fault: Fault, headers: &[(&str, &str)]) -> Run {
        let chain = HttpChain::new(vec![Arc::new(fault)]);
        exchange(&chain, request("/", headers), response(200, &[]))
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_delay_then_an_abort() {
        let both = Fault::new(
            Some(FaultAbort {
                status: 503,
                percentage: 100,
            }),
            Some(FaultDelay {
                duration: SECOND,
                percentage: 100,
            }),
            false,
        );
        let got = run(both, &[]);
        assert_eq!(got.delayed, [SECOND]);
        assert!(got.upstream_saw.is_none());
        assert_eq!(got.client_got.head.status, 503);
        assert_eq!(got.client_got.body, [b"fault filter abort\n".to_vec()]);

        let delay_only = Fault::new(
            None,
            Some(FaultDelay {
                duration: SECOND,
                percentage: 100,
            }),
            false,
        );
        let got = run(delay_only, &[]);
        assert_eq!(got.delayed, [SECOND]);
        assert_eq!(got.client_got.head.status, 200);
        assert!(got.upstream_saw.is_some());
    }

    #[test]
    fn percentages_pick_a_share_of_requests() {
        let never = Fault::new(
            Some(FaultAbort {
                status: 500,
                percentage: 0,
            }),
            None,
            false,
        );
        assert!((0..100).all(|_| run(never.clone(), &[]).client_got.head.status == 200));
        let half = Fault::new(
            Some(FaultAbort {
                status: 500,
                percentage: 50,
            }),
            None,
            false,
        );
        let aborted = (0..400)
            .filter(|_| run(half.clone(), &[]).client_got.head.status == 500)
            .count();
        // Binomial(400, 0.5): outside 120..280 about once in 10^20 runs.
        assert!((120..280).contains(&aborted), "{aborted} of 400");
        assert!((0..100).all(|_| roll(100)) && !(0..100).any(|_| roll(0)));
    }

    #[test]
    fn headers_ask_for_faults_only_when_the_filter_lets_them() {
        let ask = [(ABORT_HEADER, "418"), (DELAY_HEADER, "250")];
        let controlled = Fault::new(None, None, true);
        let got = run(controlled.clone(), &ask);
        assert_eq!(got.delayed, [Duration::from_millis(250)]);
        assert_eq!(got.client_got.head.status, 418);
        let got = run(controlled.clone(), &[(DELAY_HEADER, "999999999")]);
        assert_eq!(got.delayed, [MAX_HEADER_DELAY]);
        // Nonsense is ignored.
        let got = run(controlled, &[(ABORT_HEADER, "42"), (DELAY_HEADER, "soon")]);
        assert!(got.delayed.is_empty());
        assert_eq!(got.client_got.head.status, 200);

        let closed = Fault::new(
            None,
            Some(FaultDelay {
                duration: SECOND,
                percentage: 0,
            }),
            false,
        );
        let got = run(closed, &ask);
        assert!(got.delayed.is_empty());
        assert_eq!(got.client_got.head.status, 200);
    }
}
