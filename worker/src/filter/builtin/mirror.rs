//! `mirror`: an HTTP filter that copies requests to a shadow cluster —
//! Envoy's route `request_mirror_policies` (`cluster`, a
//! `runtime_fraction` as `percentage`, `disable_shadow_host_suffix_append`).
//!
//! Each request rolls its own dice when its head reaches the filter
//! (a percentage of 30 copies about 30 in 100 requests; 100 always, 0
//! never); a request chosen asks the exchange for a copy
//! ([`HttpStreamFilter::mirror`]). The exchange makes and sends it
//! (`http::shadow`): only for a request that every filter let through and
//! that is routed to a cluster, with the request as it goes upstream
//! (the changes of every filter in it), its host suffixed with `-shadow`
//! unless the filter says not to; the shadow's answer is read and
//! dropped, and nothing about it — slow, failing, unreachable — reaches
//! the client or delays the request.
//!
//! The filter keeps what it decided in its stream and nothing per
//! connection: it moves.

use std::sync::Arc;

use crate::filter::builtin::fault::roll;
use crate::filter::http::{Action, HttpFilter, HttpStreamFilter, MirrorTo, RequestHead};
use crate::filter::{ConnInfo, Mobility};

/// Copies a share of requests to a shadow cluster.
#[derive(Debug, Clone)]
pub(crate) struct Mirror {
    to: Arc<MirrorTo>,
    /// 0 to 100.
    percentage: u8,
}

impl Mirror {
    pub(crate) fn new(settings: &baton_config::filter::Mirror) -> Mirror {
        Mirror {
            to: Arc::new(MirrorTo {
                cluster: Arc::from(settings.cluster.as_str()),
                host_suffix: settings.host_suffix,
                max_body_bytes: settings.max_body_bytes,
            }),
            percentage: settings.percentage,
        }
    }
}

impl HttpFilter for Mirror {
    fn name(&self) -> &'static str {
        "mirror"
    }

    fn mobility(&self) -> Mobility {
        Mobility::Moves
    }

    fn stream(&self, _conn: &ConnInfo) -> Box<dyn HttpStreamFilter> {
        Box::new(MirrorStream {
            to: Arc::clone(&self.to),
            percentage: self.percentage,
            chosen: false,
        })
    }
}

/// One request: whether it is copied.
struct MirrorStream {
    to: Arc<MirrorTo>,
    percentage: u8,
    chosen: bool,
}

impl HttpStreamFilter for MirrorStream {
    fn on_request_headers(&mut self, _head: &mut dyn RequestHead, _end: bool) -> Action {
        self.chosen = roll(self.percentage);
        Action::Continue
    }

    fn mirror(&self) -> Option<MirrorTo> {
        self.chosen.then(|| MirrorTo::clone(&self.to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::http::HttpChain;
    use crate::filter::http::mock::request;

    fn chain(percentage: u8, host_suffix: bool) -> HttpChain {
        HttpChain::new(vec![Arc::new(Mirror::new(&baton_config::filter::Mirror {
            cluster: "shadow".into(),
            percentage,
            host_suffix,
            max_body_bytes: 10,
        }))])
    }

    /// The copies one request asks for, once its head has passed.
    fn asked(chain: &HttpChain) -> Vec<MirrorTo> {
        let conn = ConnInfo {
            listener: Arc::from("l"),
            source: None,
            local: None,
        };
        let mut stream = chain.stream(&conn);
        assert!(
            stream.mirrors().is_empty(),
            "nothing is asked before the head has passed"
        );
        let mut head = request("/p", &[]).head;
        assert!(matches!(
            stream.request_headers(&mut head, false),
            Action::Continue
        ));
        stream.mirrors()
    }

    #[test]
    fn every_request_is_copied_at_100_and_none_at_0() {
        let all = chain(100, true);
        for _ in 0..50 {
            assert_eq!(
                asked(&all),
                [MirrorTo {
                    cluster: Arc::from("shadow"),
                    host_suffix: true,
                    max_body_bytes: 10,
                }]
            );
        }
        let none = chain(0, true);
        for _ in 0..50 {
            assert!(asked(&none).is_empty());
        }
    }

    #[test]
    fn the_copy_says_whether_its_host_is_suffixed() {
        let plain = asked(&chain(100, false));
        assert_eq!(plain.len(), 1);
        assert!(!plain[0].host_suffix);
    }

    #[test]
    fn a_request_a_filter_before_answered_asks_for_no_copy() {
        use baton_config::filter::FaultAbort;

        use crate::filter::builtin::fault::Fault;
        let abort = FaultAbort {
            status: 503,
            percentage: 100,
        };
        let chain = HttpChain::new(vec![
            Arc::new(Fault::new(Some(abort), None, false)),
            chain(100, true).filters()[0].clone(),
        ]);
        let conn = ConnInfo {
            listener: Arc::from("l"),
            source: None,
            local: None,
        };
        let mut stream = chain.stream(&conn);
        let mut head = request("/p", &[]).head;
        assert!(matches!(
            stream.request_headers(&mut head, false),
            Action::Respond(_)
        ));
        assert!(stream.mirrors().is_empty());
    }

    #[test]
    fn a_share_of_requests_is_copied() {
        let half = chain(50, true);
        let copied = (0..1000).filter(|_| !asked(&half).is_empty()).count();
        // Far outside what chance does (the binomial's deviation is ~16).
        assert!((300..700).contains(&copied), "{copied} of 1000");
    }
}
