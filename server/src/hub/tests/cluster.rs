//! A node of a cluster (`hub/cluster.rs`), without Redis or PostgreSQL: news fed in by
//! hand, publications read from the bus's queue.

use confab_shared::Person;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::*;
use crate::cluster::{Bus, Inbound, Published};

fn node(f: &mut Fixture) -> mpsc::Receiver<Published> {
    let (tx, rx) = mpsc::channel(64);
    f.hub
        .join_cluster(Bus::new(tx, 1), ClusterSettings::default());
    rx
}

/// Entry `seq` of `general` as another node publishes it.
fn remote(seq: u64, body: &str) -> Inbound {
    let msg = ChatMessage {
        id: 1000 + seq,
        room: "general".into(),
        seq,
        from: "zoe".into(),
        name: "Zoe".into(),
        body: body.into(),
        ts: 1,
        ..ChatMessage::default()
    };
    Inbound::Published(Published::Log {
        room: "general".into(),
        seq,
        frame: Utf8Bytes::from(serde_json::to_string(&ServerMsg::Message(msg)).expect("json")),
    })
}

#[test]
fn entries_from_other_nodes_are_delivered_in_seq_order_and_once() {
    let mut f = Fixture::new();
    let _bus = node(&mut f);
    let mut ada = f.member(1, "ada");
    ada.drain();
    f.hub.cluster_event(remote(2, "second"));
    assert!(ada.drain().is_empty(), "held: entry 1 is missing");
    f.hub.cluster_event(remote(1, "first"));
    assert_eq!(bodies(&ada.drain()), ["first", "second"]);
    f.hub.cluster_event(remote(2, "second again"));
    f.hub.cluster_event(remote(1, "first again"));
    assert!(ada.drain().is_empty(), "delivered once");
    f.hub.cluster_event(remote(3, "third"));
    assert_eq!(bodies(&ada.drain()), ["third"]);
}

#[test]
fn a_local_commit_is_published_and_waits_for_the_entries_before_it() {
    let mut f = Fixture::new();
    let mut bus = node(&mut f);
    let mut ada = f.member(1, "ada");
    ada.drain();
    while bus.try_recv().is_ok() {}
    // Another node committed 1 and 2; their news is late. This node's commit is 3.
    f.hub
        .store
        .apply(&[
            Write::Append(new_message("general", "zoe", "z1", "one")),
            Write::Append(new_message("general", "zoe", "z2", "two")),
        ])
        .expect("another node's commits");
    f.say(&ada, "general", "three", "c1");
    let got = ada.drain();
    assert!(
        matches!(got.as_slice(), [ServerMsg::Ack { seq: 3, .. }]),
        "acknowledged at once, delivered after 1 and 2: {got:?}"
    );
    let logs: Vec<(String, u64, Utf8Bytes)> = std::iter::from_fn(|| bus.try_recv().ok())
        .filter_map(|news| match news {
            Published::Log { room, seq, frame } => Some((room, seq, frame)),
            _ => None,
        })
        .collect();
    match logs.as_slice() {
        [(room, 3, frame)] => {
            assert_eq!(room, "general");
            assert!(frame.as_str().contains("three"));
        }
        other => panic!("expected the commit published, got {other:?}"),
    }
    f.hub.cluster_event(remote(1, "one"));
    f.hub.cluster_event(remote(2, "two"));
    assert_eq!(bodies(&ada.drain()), ["one", "two", "three"]);
}

#[test]
fn a_gap_the_bus_never_fills_is_read_from_the_store_after_the_grace() {
    let mut f = Fixture::new();
    let _bus = node(&mut f);
    let mut ada = f.member(1, "ada");
    ada.drain();
    // Another node committed 1 and 2 and published only 2 (it died, or Redis lost 1).
    f.hub
        .store
        .apply(&[
            Write::Append(new_message("general", "zoe", "z1", "lost on the bus")),
            Write::Append(new_message("general", "zoe", "z2", "two")),
        ])
        .expect("another node's commits");
    f.hub.cluster_event(remote(2, "two"));
    assert!(ada.drain().is_empty());
    f.hub
        .tick(Instant::now() + ClusterSettings::default().gap_grace);
    f.hub.finish_inline_reads();
    f.hub.settle();
    assert_eq!(bodies(&ada.drain()), ["lost on the bus", "two"]);
}

#[test]
fn typing_on_another_node_reaches_everyone_here() {
    let mut f = Fixture::new();
    let _bus = node(&mut f);
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    ada.drain();
    bob.drain();
    let who = Person {
        user: "zoe".into(),
        name: "Zoe".into(),
        guest: false,
    };
    f.hub.cluster_event(Inbound::Published(Published::Typing {
        room: "general".into(),
        who: who.clone(),
    }));
    for c in [&mut ada, &mut bob] {
        assert!(matches!(
            c.drain().as_slice(),
            [ServerMsg::Typing { who: w, .. }] if *w == who
        ));
    }
}

fn new_message(room: &str, from: &str, client_id: &str, body: &str) -> crate::store::NewMessage {
    crate::store::NewMessage {
        room: room.into(),
        from: from.into(),
        name: from.into(),
        body: body.into(),
        client_id: client_id.into(),
        ts: 1,
        reply_to: None,
        mentions: Vec::new(),
        files: Vec::new(),
    }
}

fn refused_unavailable(msgs: &[ServerMsg]) -> bool {
    matches!(
        msgs,
        [ServerMsg::Error {
            code: confab_shared::ErrorCode::Unavailable,
            retry_after_ms: Some(_),
            ..
        }]
    )
}

#[test]
fn a_resume_ahead_of_this_node_waits_until_it_caught_up() {
    let mut f = Fixture::new();
    let _bus = node(&mut f);
    let mut ada = f.member(1, "ada");
    ada.drain();
    // Another node delivered 1 and 2 to this client; here only 2 has arrived.
    f.hub
        .store
        .apply(&[
            Write::Append(new_message("general", "zoe", "z1", "one")),
            Write::Append(new_message("general", "zoe", "z2", "two")),
        ])
        .expect("another node's commits");
    f.hub.cluster_event(remote(2, "two"));
    ada.drain();
    f.hub.apply(1, join("general", Some(2)));
    assert!(
        refused_unavailable(&ada.drain()),
        "2 is known here, not delivered yet"
    );
    f.hub
        .tick(Instant::now() + ClusterSettings::default().gap_grace);
    f.hub.finish_inline_reads();
    f.hub.settle();
    ada.drain();
    f.hub.apply(1, join("general", Some(2)));
    assert!(
        matches!(ada.drain().as_slice(), [ServerMsg::Joined { through: 2, history, .. }] if history.is_empty()),
        "caught up: nothing new, nothing twice"
    );
}

#[test]
fn a_cursor_past_anything_stored_is_taken_after_one_look() {
    let mut f = Fixture::new();
    let _bus = node(&mut f);
    let mut ada = f.member(1, "ada");
    ada.drain();
    f.hub.apply(1, join("general", Some(1_000_000)));
    assert!(
        refused_unavailable(&ada.drain()),
        "first, a look at the heads"
    );
    f.hub.tick(Instant::now());
    f.hub.finish_inline_reads();
    f.hub.settle();
    // (The tick also sent the room list's news of ada's join.)
    ada.drain();
    f.hub.apply(1, join("general", Some(1_000_000)));
    let got = ada.drain();
    assert!(
        matches!(got.as_slice(), [ServerMsg::Joined { through: 0, .. }]),
        "the look knew nothing of it: taken as a single server takes it: {got:?}"
    );
    f.hub.cluster_event(remote(1, "first"));
    assert_eq!(bodies(&ada.drain()), ["first"], "and the room goes on");
}

#[test]
fn people_here_count_a_member_who_arrived_on_another_node_at_once() {
    let mut f = Fixture::new();
    let _bus = node(&mut f);
    let mut ada = f.member(1, "ada");
    ada.drain();
    // Zoe joins #general through another node, which stores her membership; this node
    // hears of her arrival before it reads the room again.
    let zoe = Person {
        user: "zoe".into(),
        name: "Zoe".into(),
        guest: false,
    };
    f.hub.cluster_event(Inbound::Published(Published::Presence {
        room: "general".into(),
        who: zoe.clone(),
        node: 2,
        online: true,
    }));
    let got = ada.drain();
    assert!(
        matches!(
            got.as_slice(),
            [ServerMsg::Presence { who, event: PresenceEvent::Joined, member_count: 2, .. }] if *who == zoe
        ),
        "ada and zoe: {got:?}"
    );
    // Bob, arriving here, is told of both, and Ada counts three.
    let mut bob = f.signed_in(2, "bob");
    f.hub.apply(bob.id, join("general", None));
    f.hub.finish_inline_reads();
    f.hub.settle();
    let joined = bob.drain();
    assert!(
        joined.iter().any(|m| matches!(
            m,
            ServerMsg::Joined {
                member_count: 3,
                ..
            }
        )),
        "bob's join counts ada, zoe and bob: {joined:?}"
    );
    let got = ada.drain();
    assert!(
        matches!(
            got.as_slice(),
            [ServerMsg::Presence {
                event: PresenceEvent::Joined,
                member_count: 3,
                ..
            }]
        ),
        "ada sees bob arrive, three members: {got:?}"
    );
}
