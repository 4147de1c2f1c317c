//! Several servers, one chat (issue 18): real `confab-server` processes sharing one
//! PostgreSQL and one Redis started for the test (tests/common/services.rs), with
//! clients spread over them. Their sign-in limits hold for the cluster, not per node.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{
    Client, HttpResponse, PASSWORD, http_post,
    process::{ServerProcess, free_addr, run_command},
    services::{Postgres, Redis},
};
use confab_shared::{ChatMessage, ClientMsg, PresenceEvent, ServerMsg};
use serde_json::json;
use tokio::time::{sleep, timeout};

/// PostgreSQL, Redis and `n` nodes using them, each with a data directory of its own.
struct Cluster {
    nodes: Vec<(SocketAddr, ServerProcess)>,
    _dirs: Vec<tempfile::TempDir>,
    pg: Postgres,
    redis: Redis,
    /// Flags every node gets.
    flags: Vec<String>,
}

/// Nodes that look at PostgreSQL for what they missed only once, at start: what they
/// deliver came through Redis.
const BUS_ONLY: &[&str] = &[
    "--cluster-check-ms",
    "600000",
    "--cluster-poll-ms",
    "600000",
];

impl Cluster {
    async fn start(n: usize) -> Self {
        Self::start_with(n, &[]).await
    }

    async fn start_with(n: usize, flags: &[&str]) -> Self {
        let pg = Postgres::start().expect("start PostgreSQL");
        let redis = Redis::start().expect("start Redis");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            _dirs: Vec::new(),
            pg,
            redis,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        };
        for _ in 0..n {
            cluster.add_node().await;
        }
        cluster
    }

    async fn add_node(&mut self) -> SocketAddr {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = free_addr();
        let (db, redis) = (self.pg.url(), self.redis.url());
        let mut flags = vec!["--database-url", &db, "--redis-url", &redis];
        flags.extend(self.flags.iter().map(String::as_str));
        let node = ServerProcess::start_with(addr, dir.path(), &flags).await;
        self.nodes.push((addr, node));
        self._dirs.push(dir);
        addr
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].0
    }
}

/// The next chat message this client receives, skipping everything else.
async fn next_message(c: &mut Client) -> ChatMessage {
    match c.recv_until(|m| matches!(m, ServerMsg::Message(_))).await {
        ServerMsg::Message(m) => m,
        _ => unreachable!(),
    }
}

/// Waits until `room` is known on the node `c` is connected to (it was created on
/// another node): joining succeeds.
async fn join_when_known(c: &mut Client, room: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        c.send_json(&ClientMsg::Join {
            room: room.to_owned(),
            after: None,
        })
        .await;
        match c
            .recv_until(|m| matches!(m, ServerMsg::Joined { .. } | ServerMsg::Error { .. }))
            .await
        {
            ServerMsg::Joined { .. } => return,
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{room} never reached this node: {other:?}"
                );
                sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_message_sent_on_any_node_reaches_every_member_in_one_order() {
    let cluster = Cluster::start_with(3, BUS_ONLY).await;
    let mut clients = Vec::new();
    for (i, name) in ["ada", "bob", "cy"].iter().enumerate() {
        clients.push(Client::named(cluster.addr(i), name).await);
    }
    clients[0].create_room("plans").await;
    for c in &mut clients {
        join_when_known(c, "plans").await;
    }
    // Everyone sends at once, from every node.
    const EACH: usize = 30;
    for round in 0..EACH {
        for (i, c) in clients.iter_mut().enumerate() {
            c.send_to("plans", &format!("m{i}-{round}")).await;
        }
    }
    let mut seen = Vec::new();
    for c in &mut clients {
        let mut got = Vec::new();
        while got.len() < EACH * 3 {
            let m = timeout(Duration::from_secs(10), next_message(c))
                .await
                .expect("every message arrives");
            got.push((m.seq, m.body));
        }
        seen.push(got);
    }
    let seqs: Vec<u64> = seen[0].iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        seqs,
        (1..=(EACH * 3) as u64).collect::<Vec<_>>(),
        "one gap-free order"
    );
    assert_eq!(
        seen[0], seen[1],
        "node 2 delivers the same, in the same order"
    );
    assert_eq!(
        seen[0], seen[2],
        "node 3 delivers the same, in the same order"
    );
}

#[tokio::test]
async fn while_redis_is_down_messages_still_commit_and_cross_nodes_from_postgres() {
    let mut cluster = Cluster::start(2).await;
    let mut ada = Client::named(cluster.addr(0), "ada").await;
    let mut bob = Client::named(cluster.addr(1), "bob").await;
    ada.create_room("ops").await;
    join_when_known(&mut ada, "ops").await;
    join_when_known(&mut bob, "ops").await;
    ada.say("ops", "before").await;
    assert_eq!(next_message(&mut bob).await.body, "before");

    cluster.redis.stop().expect("stop Redis");
    // Acknowledged without Redis: the commit is all an ack waits for.
    let during = ada.say("ops", "during").await;
    let got = timeout(Duration::from_secs(10), next_message(&mut bob))
        .await
        .expect("the other node finds it in PostgreSQL");
    assert_eq!((got.seq, got.body.as_str()), (during.seq, "during"));

    cluster.redis.start_again().expect("start Redis again");
    let after = bob.say("ops", "after").await;
    let got = timeout(Duration::from_secs(10), next_message(&mut ada))
        .await
        .expect("delivered once Redis is back");
    assert_eq!((got.seq, got.body.as_str()), (after.seq, "after"));
    assert_eq!(after.seq, during.seq + 1, "no gap, no duplicate");
}

/// The next presence event about `user` this client receives.
async fn presence_of(c: &mut Client, user: &str) -> PresenceEvent {
    let user = user.to_owned();
    match c
        .recv_until(|m| matches!(m, ServerMsg::Presence { who, .. } if who.user == user))
        .await
    {
        ServerMsg::Presence { event, .. } => event,
        _ => unreachable!(),
    }
}

/// Joins `room` until the online list shows everyone in `expected`.
async fn join_seeing(c: &mut Client, room: &str, expected: &[&str]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (online, _) = c.join(room).await;
        if expected.iter().all(|who| online.iter().any(|o| o == who)) {
            return online;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{expected:?} never all online: {online:?}"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn presence_and_typing_are_the_same_on_every_node_and_a_killed_nodes_people_go_offline() {
    let mut cluster = Cluster::start_with(3, &["--cluster-presence-ttl-secs", "3"]).await;
    let mut ada = Client::named(cluster.addr(0), "ada").await;
    ada.create_room("lobby").await;
    join_when_known(&mut ada, "lobby").await;
    let mut bob = Client::named(cluster.addr(1), "bob").await;
    join_when_known(&mut bob, "lobby").await;
    assert_eq!(presence_of(&mut ada, "~bob").await, PresenceEvent::Joined);
    let mut cy = Client::named(cluster.addr(2), "cy").await;
    join_when_known(&mut cy, "lobby").await;
    // Everyone sees the same three people online, each from their own node.
    let mut online = join_seeing(&mut cy, "lobby", &["~ada", "~bob", "~cy"]).await;
    online.sort();
    assert_eq!(online, ["~ada", "~bob", "~cy"], "each person once");
    join_seeing(&mut ada, "lobby", &["~ada", "~bob", "~cy"]).await;
    join_seeing(&mut bob, "lobby", &["~ada", "~bob", "~cy"]).await;

    // Typing on node 1 shows on nodes 0 and 2.
    bob.send_json(&ClientMsg::Typing {
        room: "lobby".into(),
    })
    .await;
    for c in [&mut ada, &mut cy] {
        match c
            .recv_until(|m| matches!(m, ServerMsg::Typing { .. }))
            .await
        {
            ServerMsg::Typing { room, who } => {
                assert_eq!((room.as_str(), who.user.as_str()), ("lobby", "~bob"))
            }
            _ => unreachable!(),
        }
    }

    // ada closes her tab: the others see her go at once.
    drop(ada);
    assert_eq!(presence_of(&mut cy, "~ada").await, PresenceEvent::Left);
    assert_eq!(presence_of(&mut bob, "~ada").await, PresenceEvent::Left);

    // bob's node dies without a word: within the TTL and a renewal, cy sees him go.
    let (_, node) = cluster.nodes.remove(1);
    node.kill().await;
    let gone = timeout(Duration::from_secs(15), presence_of(&mut cy, "~bob"))
        .await
        .expect("bob goes offline within the presence TTL");
    assert_eq!(gone, PresenceEvent::Left);
}

#[tokio::test]
async fn a_node_stopped_cleanly_takes_its_people_offline_everywhere_at_once() {
    // The default presence TTL (15 s): nobody should have to wait for it after a clean
    // stop, which closes its people's sockets and says so.
    let mut cluster = Cluster::start(2).await;
    let mut ada = Client::named(cluster.addr(0), "ada").await;
    ada.create_room("lobby").await;
    join_when_known(&mut ada, "lobby").await;
    let mut bob = Client::named(cluster.addr(1), "bob").await;
    join_when_known(&mut bob, "lobby").await;
    assert_eq!(presence_of(&mut ada, "~bob").await, PresenceEvent::Joined);

    let (_, node) = cluster.nodes.remove(1);
    node.terminate().await;
    let gone = timeout(Duration::from_secs(3), presence_of(&mut ada, "~bob"))
        .await
        .expect("bob goes offline as his node stops, not when his presence expires");
    assert_eq!(gone, PresenceEvent::Left);
    // Gone from Redis's presence set too: after node 0 has read the sets again (every
    // third of the TTL), bob is still not listed.
    sleep(Duration::from_secs(6)).await;
    let (online, _) = ada.join("lobby").await;
    assert_eq!(online, ["~ada"]);
}

/// Signs in as `username` with `password` through `node`, as the client at `from` (the
/// test is the nodes' trusted proxy); returns how long the answer took.
async fn sign_in_through(
    node: SocketAddr,
    from: &str,
    username: &str,
    password: &str,
) -> (HttpResponse, Duration) {
    let started = std::time::Instant::now();
    let resp = http_post(
        node,
        "/api/signin",
        &[("x-forwarded-for", from)],
        &json!({"username": username, "password": password}),
    )
    .await;
    (resp, started.elapsed())
}

#[tokio::test]
async fn wrong_passwords_spread_over_the_nodes_meet_one_cluster_wide_limit() {
    // 3 wrong passwords per (username, address), 4 per username before slowing, at most
    // 2 s: the numbers of tests/account_security.rs, for the cluster as a whole.
    let cluster = Cluster::start_with(
        2,
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--sign-in-per-user-ip-per-min",
            "3",
            "--sign-in-per-user-per-min",
            "4",
            "--sign-in-max-delay-secs",
            "2",
        ],
    )
    .await;
    let home = "198.51.100.7";
    let signed_up = http_post(
        cluster.addr(0),
        "/api/signup",
        &[("x-forwarded-for", home)],
        &json!({"username": "ada", "password": PASSWORD}),
    )
    .await;
    assert_eq!(signed_up.status, 201, "{signed_up:?}");

    // One address, alternating nodes: 3 wrong passwords in all, then 429 on either node,
    // even for the right password. (Counted per node it would be 3 on each.)
    let attacker = "203.0.113.1";
    let mut statuses = Vec::new();
    for k in 0..4 {
        let (resp, _) = sign_in_through(cluster.addr(k % 2), attacker, "ada", "guess guess").await;
        statuses.push(resp.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    let (refused, _) = sign_in_through(cluster.addr(0), attacker, "ada", PASSWORD).await;
    assert_eq!(refused.status, 429, "{refused:?}");

    // From new addresses, alternating nodes: the username's count is the cluster's (3
    // so far), so the 4th wrong password is free and each one after waits a second
    // more, at most 2 s. (Counted per node, none of these would wait.)
    let mut waits = Vec::new();
    for k in 0..3 {
        let (resp, took) = sign_in_through(
            cluster.addr(k % 2),
            &format!("192.0.2.{}", k + 1),
            "ada",
            "guess guess",
        )
        .await;
        assert_eq!(resp.status, 401, "slowed, never refused: {resp:?}");
        waits.push(took);
    }
    eprintln!("guesses from new addresses over both nodes took {waits:?}");
    assert!(waits[0] < Duration::from_millis(900), "{waits:?}");
    assert!(waits[1] >= Duration::from_millis(900), "{waits:?}");
    assert!(waits[2] >= Duration::from_millis(1900), "{waits:?}");

    // The owner still gets in, through either node, slowed at most the maximum.
    let (owner, took) = sign_in_through(cluster.addr(1), home, "ada", PASSWORD).await;
    assert_eq!(owner.status, 200, "{owner:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn a_session_made_on_one_node_works_on_all_and_signing_out_everywhere_closes_them_all() {
    let cluster = Cluster::start(3).await;
    // Signed up through node 0; the same session opens sockets on nodes 1 and 2.
    let phone = common::sign_up(cluster.addr(0), "ada").await;
    let laptop = common::sign_in(cluster.addr(2), "ada", PASSWORD)
        .await
        .session_cookie()
        .expect("signed in through node 2");
    let mut on_phone = Client::signed_in(cluster.addr(1), &phone).await;
    let mut on_laptop = Client::signed_in(cluster.addr(2), &laptop).await;
    let mut also_phone = Client::signed_in(cluster.addr(0), &phone).await;

    // Signing the phone out through node 2 closes its sockets on nodes 1 and 0 only.
    let out = http_post(
        cluster.addr(2),
        "/api/signout",
        &[("cookie", &phone)],
        &json!({}),
    )
    .await;
    assert_eq!(out.status, 204);
    assert_eq!(
        on_phone.expect_close().await,
        confab_shared::close::SIGNED_OUT
    );
    assert_eq!(
        also_phone.expect_close().await,
        confab_shared::close::SIGNED_OUT
    );
    on_laptop.send_json(&ClientMsg::ListRooms).await;
    assert!(matches!(
        on_laptop
            .recv_until(|m| matches!(m, ServerMsg::Rooms { .. }))
            .await,
        ServerMsg::Rooms { .. }
    ));

    // Everywhere, through node 0: the laptop's socket on node 2 closes.
    let mut laptop_on_1 = Client::signed_in(cluster.addr(1), &laptop).await;
    let out = http_post(
        cluster.addr(0),
        "/api/signout",
        &[("cookie", &laptop)],
        &json!({"everywhere": true}),
    )
    .await;
    assert_eq!(out.status, 204);
    assert_eq!(
        on_laptop.expect_close().await,
        confab_shared::close::SIGNED_OUT
    );
    assert_eq!(
        laptop_on_1.expect_close().await,
        confab_shared::close::SIGNED_OUT
    );
    // And the session is gone on every node.
    for i in 0..3 {
        let me = common::http_request(
            cluster.addr(i),
            "GET",
            "/api/me",
            &[("cookie", &laptop)],
            None,
        )
        .await;
        assert_eq!(me.status, 401, "node {i} still knows the session");
    }
}

/// `confab-server admin ARGS…` on a machine with no node: its own empty data directory,
/// the cluster's PostgreSQL and Redis. What it printed, after checking it succeeded.
async fn admin_from_elsewhere(cluster: &Cluster, args: &[&str]) -> String {
    let nowhere = tempfile::tempdir().expect("tempdir");
    let (dir, db, redis) = (
        nowhere.path().to_str().expect("UTF-8 path"),
        cluster.pg.url(),
        cluster.redis.url(),
    );
    let head = [
        "--data-dir",
        dir,
        "--database-url",
        &db,
        "--redis-url",
        &redis,
        "admin",
    ];
    let ran = run_command(&[&head[..], args].concat(), "").await;
    assert!(ran.ok, "admin {args:?} failed: {}", ran.output());
    ran.output()
}

#[tokio::test]
async fn the_admin_command_on_a_machine_without_a_node_reaches_every_node_through_redis() {
    let cluster = Cluster::start_with(2, BUS_ONLY).await;
    let ada = common::sign_up(cluster.addr(0), "ada").await;
    let mut ada_on_0 = Client::signed_in(cluster.addr(0), &ada).await;
    let mut ada_on_1 = Client::signed_in(cluster.addr(1), &ada).await;
    // The room made by Cy on node 1, which has not read it back from the store (its
    // next look is minutes away); Bob on node 0, which read it when it heard of it.
    let mut bob = Client::named(cluster.addr(0), "bob").await;
    let mut cy = Client::named(cluster.addr(1), "cy").await;
    cy.create_room("ops").await;
    cy.join("ops").await;
    bob.expect_room_list_with("ops").await;
    bob.join("ops").await;
    ada_on_0.expect_room_list_with("ops").await;
    ada_on_1.expect_room_list_with("ops").await;

    let out = admin_from_elsewhere(&cluster, &["disable", "ada"]).await;
    assert!(
        out.contains("2 running nodes of the cluster were told to close their sockets"),
        "{out}"
    );
    // Every node closes them as it closes a sign-out everywhere told by a peer.
    for socket in [&mut ada_on_0, &mut ada_on_1] {
        assert_eq!(
            socket.expect_close().await,
            confab_shared::close::SIGNED_OUT
        );
    }

    // With the nodes looking at PostgreSQL only every ten minutes, Bob hears of his
    // room's deletion from the command line's news.
    let out = admin_from_elsewhere(&cluster, &["delete-room", "ops"]).await;
    assert!(
        out.contains("2 running nodes of the cluster were told to drop it"),
        "{out}"
    );
    for member in [&mut bob, &mut cy] {
        member
            .recv_until(|m| matches!(m, ServerMsg::Left { room } if room == "ops"))
            .await;
    }
}
