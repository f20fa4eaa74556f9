//! Load-balancing policies end to end: real HTTP upstreams (and echo
//! servers, for L4) behind one cluster, counted from the upstreams' own
//! records — weighted round robin's exact shares, hashing on a header, a
//! cookie and the source IP, least_request across an upgrade, and what
//! the config refuses.
// Test code: a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use baton_tests::http_peer::{Client, HttpUpstream};
use baton_tests::upstream::Echo;
use baton_tests::{Baton, PATIENCE, bin, tcp_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// An `http` listener `web` in front of cluster `c`: `lb`, the endpoints
/// as written, and extra cluster keys.
fn config(lb: &str, endpoints: &str, extra: &str) -> String {
    format!(
        "[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\nprotocol = \"http\"\n\
         cluster = \"c\"\n\n\
         [[clusters]]\nname = \"c\"\nlb = \"{lb}\"\nendpoints = [{endpoints}]\n{extra}"
    )
}

async fn three() -> [HttpUpstream; 3] {
    [
        HttpUpstream::start("a").await,
        HttpUpstream::start("b").await,
        HttpUpstream::start("c").await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_sends_5_1_1_of_every_7_requests() {
    let ups = three().await;
    let endpoints = format!(
        "{{ address = \"{}\", weight = 5 }}, \"{}\", {{ address = \"{}\", weight = 1 }}",
        ups[0].addr, ups[1].addr, ups[2].addr
    );
    let baton = Baton::start(&config("round_robin", &endpoints, ""));
    let mut client = Client::connect(baton.addr("web")).await;
    let mut answered: HashMap<String, usize> = HashMap::new();
    for i in 0..70 {
        let response = client.get(&format!("/r{i}")).await;
        assert_eq!(response.status(), 200);
        *answered
            .entry(response.header("x-upstream").unwrap().to_string())
            .or_default() += 1;
    }
    // Exactly the weights: the smooth schedule repeats every 7 picks,
    // and keep-alive reuse never overrides the pick.
    let counts: Vec<usize> = ups.iter().map(|u| u.requests()).collect();
    assert_eq!(counts, [50, 10, 10]);
    assert_eq!(answered["a"], 50);
    assert_eq!(answered["b"], 10);
    assert_eq!(answered["c"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_on_a_header_sends_each_key_to_one_upstream() {
    hashing_keeps_each_key_on_one_upstream("ring_hash", "{ header = \"x-user\" }", |user| {
        ("x-user", user.to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maglev_on_a_cookie_sends_each_key_to_one_upstream() {
    hashing_keeps_each_key_on_one_upstream("maglev", "{ cookie = \"sid\" }", |user| {
        ("cookie", format!("theme=dark; sid={user}"))
    })
    .await;
}

/// 24 keys, each sent 4 times over two client connections, through `lb`
/// hashing on `policy`; `header` puts a key in a request.
async fn hashing_keeps_each_key_on_one_upstream(
    lb: &str,
    policy: &str,
    header: impl Fn(&str) -> (&'static str, String),
) {
    let ups = three().await;
    let endpoints = format!(
        "\"{}\", \"{}\", \"{}\"",
        ups[0].addr, ups[1].addr, ups[2].addr
    );
    let baton = Baton::start(&config(
        lb,
        &endpoints,
        &format!("hash_policy = [{policy}]\n"),
    ));
    // Two clients, so a key's requests come over different connections.
    let mut clients = [
        Client::connect(baton.addr("web")).await,
        Client::connect(baton.addr("web")).await,
    ];
    let mut owner: HashMap<String, String> = HashMap::new();
    for round in 0..4 {
        for key in 0..24 {
            let user = format!("user-{key}");
            let client = &mut clients[(round + key) % 2];
            let (name, value) = header(&user);
            let response = client
                .request("GET", "/", &[(name, value.as_str()), ("x-key", &user)], b"")
                .await;
            assert_eq!(response.status(), 200);
            let upstream = response.header("x-upstream").unwrap().to_string();
            let first = owner
                .entry(user.clone())
                .or_insert_with(|| upstream.clone());
            assert_eq!(*first, upstream, "{lb}: {user} moved");
        }
    }
    // And from the upstreams' side: each saw only its own keys, every
    // time they came.
    let mut seen_by: HashMap<String, usize> = HashMap::new();
    for (i, up) in ups.iter().enumerate() {
        for head in up.seen().await {
            let user = head.header("x-key").unwrap().to_string();
            assert_eq!(owner[&user], ["a", "b", "c"][i], "{lb}: {user}");
            *seen_by.entry(user).or_default() += 1;
        }
    }
    assert_eq!(seen_by.len(), 24);
    assert!(seen_by.values().all(|&n| n == 4), "{seen_by:?}");
    // 24 keys over three endpoints: more than one is used.
    let used = ups.iter().filter(|u| u.requests() > 0).count();
    assert!(used >= 2, "{lb}: every key on one upstream");
}

/// `ring_hash` on the source IP, for an L4 listener: every connection
/// from this host goes to one endpoint (at random, the chance of that
/// over 9 connections and 3 endpoints is 1 in 6561).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_on_the_source_ip_keeps_an_l4_client_on_one_endpoint() {
    let ups = [
        Echo::start().await,
        Echo::start().await,
        Echo::start().await,
    ];
    let text = tcp_config(&[ups[0].addr, ups[1].addr, ups[2].addr], "").replace(
        "[[clusters]]\n",
        "[[clusters]]\nlb = \"ring_hash\"\nhash_policy = [{ source_ip = true }]\n",
    );
    let baton = Baton::start(&text);
    for _ in 0..9 {
        let mut stream = TcpStream::connect(baton.addr("front")).await.unwrap();
        stream.write_all(b"ping").await.unwrap();
        let mut back = [0; 4];
        timeout(PATIENCE, stream.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
    }
    let mut counts: Vec<usize> = ups.iter().map(Echo::accepted).collect();
    counts.sort_unstable();
    assert_eq!(counts, [0, 0, 9]);
}

/// What `baton check` and a reload refuse, with the key at fault; the
/// running generation keeps serving through a refused reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_balancing_config_is_refused_by_check_and_reload() {
    let ups = three().await;
    let plain = format!("\"{}\", \"{}\"", ups[0].addr, ups[1].addr);
    let baton = Baton::start(&config("round_robin", &plain, ""));
    let before = baton.worker_pids();
    let bad = [
        (
            config("least_conn", &plain, ""),
            "clusters[0].lb",
            "least_conn",
        ),
        (
            config(
                "round_robin",
                &format!("{{ address = \"{}\", weight = 0 }}", ups[0].addr),
                "",
            ),
            "clusters[0].endpoints",
            "weight must be 1 to 128",
        ),
        (
            config(
                "random",
                &format!("{{ address = \"{}\", weight = 129 }}", ups[0].addr),
                "",
            ),
            "clusters[0].endpoints",
            "weight must be 1 to 128",
        ),
        (
            config(
                "round_robin",
                &plain,
                "hash_policy = [{ header = \"x\" }]\n",
            ),
            "clusters[0].hash_policy",
            "ring_hash",
        ),
    ];
    for (i, (text, key, says)) in bad.iter().enumerate() {
        let path = baton.dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        let check = std::process::Command::new(bin("baton"))
            .args(["check", "-c", path])
            .output()
            .unwrap();
        assert_eq!(check.status.code(), Some(78), "{text}");
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert!(stderr.contains(key) && stderr.contains(says), "{stderr}");

        let upgrade = baton.cli(&["upgrade", "-c", path]);
        assert_eq!(upgrade.status.code(), Some(1), "{text}");
        let stderr = String::from_utf8_lossy(&upgrade.stderr);
        assert!(
            stderr.contains("upgrade refused") && stderr.contains(key),
            "{stderr}"
        );
    }
    assert_eq!(baton.worker_pids(), before);
    let mut client = Client::connect(baton.addr("web")).await;
    for _ in 0..4 {
        assert_eq!(client.get("/").await.status(), 200);
    }
    assert_eq!(ups[0].requests() + ups[1].requests(), 4);
}

/// `least_request` on an L4 listener counts open tunnels, and a tunnel
/// moved by an upgrade still counts in the new generation: after it, the
/// next connection goes to the endpoint with fewer. (Without the moved
/// tunnels counted, that pick would be a coin toss: this fails half the
/// time then.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_counts_l4_tunnels_across_an_upgrade() {
    let ups = [Echo::start().await, Echo::start().await];
    let text = tcp_config(&[ups[0].addr, ups[1].addr], "")
        .replace("[[clusters]]\n", "[[clusters]]\nlb = \"least_request\"\n");
    let baton = Baton::start(&text);
    let accepted = || [ups[0].accepted(), ups[1].accepted()];
    let open = || async {
        let mut stream = TcpStream::connect(baton.addr("front")).await.unwrap();
        // A round trip: the tunnel is up, its endpoint connected.
        stream.write_all(b"ping").await.unwrap();
        let mut back = [0; 4];
        timeout(PATIENCE, stream.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        stream
    };
    let first = open().await;
    let second = open().await;
    // Two endpoints, one tunnel on the first: the second goes to the other.
    assert_eq!(accepted(), [1, 1]);
    let third = open().await;
    // A tie: either; whichever it was now has two.
    let heavy = usize::from(accepted()[1] == 2);
    let light = 1 - heavy;

    tokio::task::block_in_place(|| {
        baton.upgrade(&[]);
        baton.wait_for_upgrades(1)
    });
    let mut tunnels = vec![first, second, third];
    for t in &mut tunnels {
        // Moved, and still carrying bytes.
        t.write_all(b"pong").await.unwrap();
        let mut back = [0; 4];
        timeout(PATIENCE, t.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
    }
    let before = accepted();
    let _fourth = open().await;
    let after = accepted();
    assert_eq!(
        after[light],
        before[light] + 1,
        "the new generation knew endpoint {heavy} has two tunnels: {after:?}"
    );
}
