//! The sign-in throttle of a cluster (issue 18): two `Throttle`s standing for two nodes,
//! sharing one real Redis (tests/common/services.rs), refuse and slow at the cluster-wide
//! counts, not at twice them; Redis forgets idle counts by itself; and while Redis is down
//! or silent each node counts on its own, without failing or holding up an attempt, until
//! Redis is back. The same against two real server processes is in tests/cluster.rs.

mod common;

use std::{
    net::IpAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use common::services::Redis;
use confab_server::http::{Throttle, ThrottleLimits};

fn n(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).expect("non-zero")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// The numbers of the throttle's own unit tests: 3 wrong passwords per (username,
/// address), 4 per username before slowing, at most 5 s.
const LIMITS: ThrottleLimits = ThrottleLimits {
    per_ip: NonZeroU32::new(1000).expect("non-zero"),
    per_user_ip: NonZeroU32::new(3).expect("non-zero"),
    per_username: NonZeroU32::new(4).expect("non-zero"),
    max_delay: Duration::from_secs(5),
};

/// Two nodes' throttles on one Redis.
fn two_nodes(redis: &Redis, limits: ThrottleLimits) -> [Throttle; 2] {
    [(); 2].map(|()| Throttle::clustered(limits, &redis.url()).expect("a Redis URL"))
}

/// The throttle's keys in Redis.
async fn throttle_keys(redis: &Redis) -> Vec<String> {
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    redis::cmd("KEYS")
        .arg("confab:throttle:*")
        .query_async(&mut conn)
        .await
        .expect("KEYS")
}

/// Asserts that `call` returned within the bound a sign-in may spend on Redis.
async fn quick<T>(call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "took {took:?}");
    out
}

#[tokio::test]
async fn two_nodes_sharing_redis_refuse_and_slow_at_the_cluster_wide_counts() {
    let redis = Redis::start().expect("start Redis");
    let nodes = two_nodes(&redis, LIMITS);

    // One address guessing one username, alternating nodes: 3 in all, not 3 per node.
    let attacker = ip("203.0.113.9");
    for k in 0..3 {
        nodes[k % 2]
            .sign_in(attacker, "ada", None)
            .await
            .expect("within the allowance");
    }
    let wait = nodes[1]
        .sign_in(attacker, "ada", None)
        .await
        .expect_err("the fourth wrong password in the cluster within the minute");
    assert!(
        (Duration::from_secs(19)..=Duration::from_secs(20)).contains(&wait),
        "one try back every 20 s: {wait:?}"
    );
    assert!(nodes[0].sign_in(attacker, "ada", None).await.is_err());
    // Other usernames, and other addresses, have counts of their own.
    assert!(nodes[0].sign_in(attacker, "bob", None).await.is_ok());
    assert!(
        nodes[1]
            .sign_in(ip("198.51.100.1"), "ada", None)
            .await
            .is_ok()
    );

    // Guesses from many addresses at one username, spread over the nodes: slowed at the
    // count of both together.
    let mut delays = Vec::new();
    for k in 1..=8 {
        let attempt = nodes[k % 2]
            .sign_in(ip(&format!("192.0.2.{k}")), "cy", None)
            .await
            .expect("a new address is not refused");
        delays.push(attempt.delay.as_secs());
    }
    assert_eq!(delays, [0, 0, 0, 0, 1, 2, 3, 4]);
    let attempt = nodes[1]
        .sign_in(ip("192.0.2.99"), "cy", None)
        .await
        .expect("slowed, never refused");
    assert_eq!(attempt.delay, Duration::from_secs(5), "at most the maximum");
    // The owner's known device is not slowed.
    let owner = nodes[0]
        .sign_in(ip("192.0.2.1"), "cy", Some([7; 16]))
        .await
        .expect("the owner's device");
    assert_eq!(owner.delay, Duration::ZERO);

    // Per address, for any usernames (sign-ups too): 2 a minute in the cluster.
    let strict = two_nodes(
        &redis,
        ThrottleLimits {
            per_ip: n(2),
            ..LIMITS
        },
    );
    let sign_ups = ip("2001:db8::1");
    assert!(strict[0].per_address(sign_ups).await.is_ok());
    assert!(
        strict[1].per_address(ip("2001:db8::2")).await.is_ok(),
        "the same /64"
    );
    let wait = strict[0]
        .per_address(sign_ups)
        .await
        .expect_err("the third attempt from the /64 in the cluster");
    assert!(wait > Duration::from_secs(29), "{wait:?}");
    assert!(strict[1].per_address(ip("2001:db8:0:1::1")).await.is_ok());
}

#[tokio::test]
async fn right_passwords_are_handed_back_on_every_node() {
    let redis = Redis::start().expect("start Redis");
    let nodes = two_nodes(&redis, LIMITS);
    for k in 0..20 {
        let attempt = nodes[k % 2]
            .sign_in(ip("203.0.113.9"), "ada", None)
            .await
            .expect("never refused");
        assert_eq!(attempt.delay, Duration::ZERO);
        // Handed back on the other node: the count is the cluster's.
        nodes[(k + 1) % 2].succeeded(&attempt).await;
    }
}

#[tokio::test]
async fn counts_in_redis_expire_when_they_are_back_to_nothing() {
    let redis = Redis::start().expect("start Redis");
    // 600 a minute: each attempt leaks away in 100 ms.
    let fast = ThrottleLimits {
        per_ip: n(600),
        per_user_ip: n(600),
        per_username: n(600),
        ..LIMITS
    };
    let [a, b] = two_nodes(&redis, fast);
    a.sign_in(ip("203.0.113.9"), "ada", None)
        .await
        .expect("counted");
    b.sign_in(ip("203.0.113.9"), "ada", Some([7; 16]))
        .await
        .expect("counted");
    let keys = throttle_keys(&redis).await;
    // Address, username, (username, address) and (username, device).
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| !k.contains("ada") && !k.contains("203.0.113")),
        "neither usernames nor addresses in Redis: {keys:?}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(throttle_keys(&redis).await, Vec::<String>::new());
}

#[tokio::test]
async fn while_redis_is_down_each_node_counts_alone_then_the_cluster_again() {
    let mut redis = Redis::start().expect("start Redis");
    let nodes = two_nodes(&redis, LIMITS);
    let attacker = ip("203.0.113.9");
    for node in &nodes {
        node.sign_in(attacker, "ada", None)
            .await
            .expect("counted in Redis");
    }

    redis.stop().expect("stop Redis");
    // Each node now counts its own: 3 more wrong passwords on each, then 429, none held
    // up by the missing Redis.
    for node in &nodes {
        for _ in 0..3 {
            quick(node.sign_in(attacker, "ada", None))
                .await
                .expect("the node's own allowance");
        }
        quick(node.sign_in(attacker, "ada", None))
            .await
            .expect_err("past the node's own allowance");
        // A right password is handed back without error too.
        let attempt = quick(node.sign_in(attacker, "bob", None))
            .await
            .expect("bob");
        quick(node.succeeded(&attempt)).await;
        quick(node.per_address(attacker))
            .await
            .expect("per address");
    }

    redis.start_again().expect("start Redis again");
    // Back in Redis within a few seconds (a node leaves Redis alone for a second after a
    // failure): an attempt leaves its counts there.
    let deadline = Instant::now() + Duration::from_secs(10);
    for k in 1.. {
        quick(nodes[0].sign_in(ip(&format!("198.51.100.{k}")), "probe", None))
            .await
            .expect("counted");
        if !throttle_keys(&redis).await.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the throttle never went back to Redis"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And the limits are the cluster's again (the restarted Redis kept nothing).
    let guesser = ip("192.0.2.7");
    for k in 0..3 {
        nodes[k % 2]
            .sign_in(guesser, "dee", None)
            .await
            .expect("within the allowance");
    }
    nodes[1]
        .sign_in(guesser, "dee", None)
        .await
        .expect_err("the cluster's fourth");
}

#[tokio::test]
async fn a_redis_that_does_not_answer_holds_no_sign_in_up() {
    // Accepts connections and never answers: every call runs into its timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("redis://{}", silent.local_addr().expect("address"));
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    let throttle = Throttle::clustered(LIMITS, &url).expect("a Redis URL");
    let attacker = ip("203.0.113.9");
    for _ in 0..3 {
        quick(throttle.sign_in(attacker, "ada", None))
            .await
            .expect("counted on the node");
    }
    quick(throttle.sign_in(attacker, "ada", None))
        .await
        .expect_err("refused by the node's own count");
    held.abort();
}
