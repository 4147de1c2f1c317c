//! Slow consumers (`hub/delivery.rs`): a connection that cannot keep up is cut off
//! without holding up anyone else, and a burst that its socket can take is not mistaken
//! for one.

use super::*;

#[test]
fn a_slow_consumer_is_disconnected_and_others_keep_receiving() {
    let mut f = Fixture::new();
    let ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    let mut slow = f.connect(3, 4);
    f.hub.apply(3, hello("slow"));
    f.hub.apply(3, join("general", None));
    // Its connection cannot write: the peer stopped reading.
    slow.rx.set_socket_full(true);
    bob.drain();
    for i in 0..10 {
        f.hub
            .apply(1, send("general", &format!("m{i}"), &format!("c{i}")));
    }
    f.flush();
    assert_eq!(slow.close_code(), Some(close::SLOW_CONSUMER));
    assert_eq!(f.hub.connection_count(), 2);
    let got = bob.drain();
    assert_eq!(bodies(&got).len(), 10);
    assert!(got.iter().any(|m| matches!(
        m,
        ServerMsg::Presence { who, event: PresenceEvent::Left, .. } if who.name == "slow"
    )));
    // The slow client got what fitted, and nothing after its queue filled.
    assert_eq!(slow.drain().len(), 4);
    drop(ada);
}

/// What `/metrics` shows of a fan-out: one observation per message, whatever the number
/// of recipients, and one slow consumer closed.
#[test]
fn each_fan_out_is_counted_once_with_its_recipients() {
    let (metrics, exporter) = crate::metrics::prometheus();
    let settings = HubSettings {
        metrics,
        ..HubSettings::default()
    };
    let mut f = Fixture::with(settings, tempfile::tempdir().expect("tempdir"));
    let ada = f.member(1, "ada");
    let bob = f.member(2, "bob");
    let slow = f.connect(3, 4);
    f.hub.apply(3, hello("slow"));
    f.hub.apply(3, join("general", None));
    slow.rx.set_socket_full(true);
    for i in 0..10 {
        f.hub
            .apply(1, send("general", &format!("m{i}"), &format!("c{i}")));
    }
    f.flush();
    let text = exporter.render();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(value("confab_messages_received_total"), 10.0);
    assert_eq!(value("confab_messages_stored_total"), 10.0);
    assert_eq!(value("confab_deliveries_per_message_count"), 10.0);
    assert_eq!(value("confab_slow_consumer_closes_total"), 1.0);
    // Ada and Bob got all ten; the slow one what fitted before it was cut off.
    let delivered = value("confab_messages_delivered_total");
    assert!((20.0..30.0).contains(&delivered), "{delivered}");
    assert_eq!(value("confab_deliveries_per_message_sum"), delivered);
    drop((ada, bob));
}

#[test]
fn a_burst_does_not_disconnect_a_client_whose_socket_takes_everything() {
    let mut f = Fixture::new();
    let ada = f.member(1, "ada");
    let mut quick = f.connect(3, 4);
    f.hub.apply(3, hello("quick"));
    f.hub.apply(3, join("general", None));
    quick.drain();
    // Ten messages reach the hub before the connection runs (as when commits held back
    // by a slow disk all come in together): more than its queue holds.
    for i in 0..10 {
        f.hub
            .apply(1, send("general", &format!("m{i}"), &format!("c{i}")));
    }
    f.flush();
    assert_eq!(quick.close_code(), None);
    assert_eq!(bodies(&quick.drain()).len(), 10);
    drop(ada);
}

/// A join's page is encoded on the reader thread and spliced into the reply: the frame
/// must be exactly what encoding the whole reply makes.
#[test]
fn a_spliced_reply_is_the_reply_encoded_whole() {
    let msg = ChatMessage {
        id: 7,
        room: "general".into(),
        seq: 3,
        from: "grace".into(),
        name: "Grace \"Amazing\" Hopper".into(),
        body: "hi\nthere \u{1}".into(),
        ts: 1,
        reactions: vec![confab_shared::Reaction {
            emoji: "\u{1F44D}".into(),
            users: vec!["ada".into()],
        }],
        rev: 9,
        ..ChatMessage::default()
    };
    let page = vec![msg.clone(), ChatMessage { seq: 4, ..msg }];
    let encoded = serde_json::to_string(&page).expect("json");
    let joined = |history| ServerMsg::Joined {
        room: "general".into(),
        members: vec![],
        member_count: 2,
        online: vec!["ada".into()],
        through: 9,
        read: 3,
        unread: 1,
        mentions: 0,
        history,
    };
    let replay = |messages| ServerMsg::Replay {
        room: "general".into(),
        through: 9,
        messages,
    };
    for (empty, whole) in [
        (joined(vec![]), joined(page.clone())),
        (replay(vec![]), replay(page.clone())),
    ] {
        let spliced =
            crate::hub::delivery::encode_spliced(&empty, &encoded).expect("ends in an array");
        assert_eq!(spliced.as_str(), whole.to_json());
    }
}
