//! Endpoint health across a handoff, between two real generations'
//! tables: what the old one knew is what the new one starts from, by
//! cluster name and address; what the new config lacks is ignored.

use std::os::fd::OwnedFd;
use std::time::Duration;

use baton_ipc::Channel;

use super::Server;
use crate::migrate::health::{self, Restored};
use crate::migrate::schema::Schema;
use crate::upstream::health::{Health, Outcome};
use crate::upstream::lb::EndpointIndex;

/// A generation (not accepting: its checkers wait) with cluster `c` over
/// `endpoints`, checked and with outlier detection.
fn generation(endpoints: &[u16]) -> Server {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let endpoints: Vec<String> = endpoints
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    let text = format!(
        "[[listeners]]\nname = \"l\"\naddress = \"{addr}\"\nprotocol = \"tcp\"\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [{}]\n\
         [clusters.health_check]\nkind = \"tcp\"\ninterval = \"1s\"\n\
         [clusters.outlier_detection]\nconsecutive_errors = 1\nbase_ejection_time = \"1h\"\n\
         max_ejection_percent = 100\n",
        endpoints.join(", ")
    );
    let config = baton_config::parse("test.toml", &text).unwrap();
    Server::new(config, vec![("l".into(), OwnedFd::from(socket))], 1).unwrap()
}

#[tokio::test]
async fn the_new_generation_starts_from_the_old_ones_endpoint_health() {
    let old = generation(&[1, 2, 3]);
    let table = old.ctx.upstreams[0].health();
    table.set_health(EndpointIndex(1), Health::Unhealthy);
    table.report(EndpointIndex(2), Outcome::Failure);
    table.set_health(EndpointIndex(0), Health::Unhealthy);

    // The new config drops :1 and adds :4.
    let new = generation(&[2, 3, 4]);
    let (a, b) = Channel::pair().unwrap();
    let sent = tokio::spawn({
        let ctx = std::sync::Arc::clone(&old.ctx);
        async move { health::send(&a, Schema::V3, &ctx).await }
    });
    let restored = health::receive(&b, Schema::V3, &new.ctx).await.unwrap();
    sent.await.unwrap().unwrap();
    assert_eq!(
        restored,
        Restored {
            applied: 2,
            ignored: 1
        }
    );
    let records = new.ctx.upstreams[0].health().records();
    assert_eq!(records[0].health, Health::Unhealthy, ":2 stays unhealthy");
    assert_eq!(records[1].ejections, 1, ":3 stays ejected");
    assert!(
        records[1]
            .ejected_for
            .is_some_and(|left| left > Duration::from_secs(3500)),
        "with the time it had left: {records:?}"
    );
    assert_eq!(records[2].health, Health::Unknown, ":4 starts fresh");
    assert_eq!(records[2].ejected_for, None);
}

/// A generation with an HTTP listener whose `local_rate_limit` (and a
/// route's, keyed by source IP) holds `max` tokens refilled hourly.
fn limited(max: u64) -> Server {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let text = format!(
        "[[listeners]]\nname = \"web\"\naddress = \"{addr}\"\nprotocol = \"http\"\n\
         filters = [{{ name = \"local_rate_limit\", max_tokens = {max}, tokens_per_fill = 1, \
         fill_interval = \"1h\" }}]\n\
         [[listeners.routes]]\npath_prefix = \"/\"\ncluster = \"c\"\n\
         filters = [{{ name = \"local_rate_limit\", max_tokens = {max}, tokens_per_fill = 1, \
         fill_interval = \"1h\", key = {{ source_ip = true }} }}]\n\
         [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n"
    );
    let config = baton_config::parse("test.toml", &text).unwrap();
    Server::new(config, vec![("web".into(), OwnedFd::from(socket))], 1).unwrap()
}

/// The rate limits' buckets (of every place, keyed or not) move with a
/// schema-4 handoff: an upgrade neither refills nor empties them.
#[tokio::test]
async fn the_new_generation_takes_over_the_rate_limits_buckets() {
    use crate::filter::buckets::Key;
    use tokio::time::Instant;

    let client = Some(Key::Ip("192.0.2.7".parse().unwrap()));
    let now = Instant::now();
    let old_server = limited(3);
    let olds = generation_limits(&old_server);
    olds[0].take(None, now).unwrap();
    olds[0].take(None, now).unwrap();
    for _ in 0..3 {
        olds[1].take(client.clone(), now).unwrap();
    }

    let new = limited(3);
    let (a, b) = Channel::pair().unwrap();
    let sent = tokio::spawn({
        let ctx = std::sync::Arc::clone(&old_server.ctx);
        async move { health::send(&a, Schema::V4, &ctx).await }
    });
    health::receive(&b, Schema::V4, &new.ctx).await.unwrap();
    sent.await.unwrap().unwrap();
    let news = generation_limits(&new);
    let now = Instant::now();
    assert!(news[0].take(None, now).is_ok(), "one token was left");
    assert!(news[0].take(None, now).is_err(), "and only one");
    assert!(
        news[1].take(client.clone(), now).is_err(),
        "the client's bucket came empty"
    );
    let other = Some(Key::Ip("192.0.2.8".parse().unwrap()));
    assert!(
        news[1].take(other, now).is_ok(),
        "another client's starts full"
    );
}

/// The listener's and its route's limiters, in that order.
fn generation_limits(server: &Server) -> Vec<&crate::filter::buckets::Limiter> {
    let id = baton_config::ListenerId::new(0);
    let http = server.ctx.http_of(id).unwrap();
    let listener = http.filters.filters()[0].buckets().unwrap();
    let route = http.listener.routes[0].filters.filters()[0]
        .buckets()
        .unwrap();
    vec![listener, route]
}
