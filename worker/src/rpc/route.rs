//! Picking a cluster for a request from its protocol attributes.
//!
//! Routes are tried in config order; the first whose every given condition
//! holds wins; with none, the listener's default cluster. Conditions on
//! attributes a protocol does not have (a `code` on a Bolt request) never
//! hold.

use baton_config::{ClusterId, Route};

use crate::codec::Attributes;

/// The cluster for a request with `attributes`, and the position of the
/// route that chose it (`None`: the default).
pub(crate) fn pick(
    routes: &[Route],
    default: ClusterId,
    attributes: &Attributes,
) -> (Option<usize>, ClusterId) {
    match routes.iter().position(|r| matches(r, attributes)) {
        Some(at) => (Some(at), routes[at].cluster),
        None => (None, default),
    }
}

fn matches(route: &Route, a: &Attributes) -> bool {
    let eq =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    eq(&route.service, a.service.as_deref())
        && eq(&route.method, a.method.as_deref())
        && eq(&route.topic, a.topic.as_deref())
        && route.code.is_none_or(|c| a.code == Some(c))
        && route
            .headers
            .iter()
            .all(|(k, v)| a.header(k) == Some(v.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(index: usize) -> ClusterId {
        ClusterId::new(index)
    }

    fn route(cluster: usize) -> Route {
        Route {
            cluster: c(cluster),
            ..Route::default()
        }
    }

    #[test]
    fn first_match_wins_else_default() {
        let mut a = Attributes {
            service: Some("com.example.Hello".into()),
            method: Some("hi".into()),
            ..Attributes::default()
        };
        let routes = vec![
            Route {
                service: Some("com.example.Other".into()),
                ..route(1)
            },
            Route {
                service: Some("com.example.Hello".into()),
                method: Some("bye".into()),
                ..route(2)
            },
            Route {
                service: Some("com.example.Hello".into()),
                ..route(3)
            },
            route(4),
        ];
        assert_eq!(pick(&routes, c(0), &a), (Some(2), c(3)));
        a.method = Some("bye".into());
        assert_eq!(pick(&routes, c(0), &a).1, c(2));
        assert_eq!(
            pick(&routes[..2], c(9), &Attributes::default()),
            (None, c(9))
        );
        // A route without conditions matches everything.
        assert_eq!(pick(&routes[3..], c(9), &Attributes::default()).1, c(4));
    }

    #[test]
    fn codes_topics_and_headers() {
        let mut a = Attributes {
            code: Some(10),
            topic: Some("orders".into()),
            ..Attributes::default()
        };
        let by_code = Route {
            code: Some(10),
            topic: Some("orders".into()),
            ..route(1)
        };
        assert_eq!(pick(std::slice::from_ref(&by_code), c(0), &a).1, c(1));
        a.code = Some(11);
        assert_eq!(pick(std::slice::from_ref(&by_code), c(0), &a).1, c(0));
        let by_header = Route {
            headers: vec![("zone".into(), "gz".into())],
            ..route(2)
        };
        assert_eq!(
            pick(std::slice::from_ref(&by_header), c(0), &a).1,
            c(0),
            "no such header"
        );
    }
}
