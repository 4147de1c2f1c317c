//! Durability with real processes: the `confab-server` binary is started, killed with
//! SIGKILL in the middle of a stream of sends, and started again on the same data.
//! Every acknowledged message must be there exactly once, in send order.

mod common;

use std::{collections::BTreeMap, net::SocketAddr};

use common::{
    Client, TIMEOUT,
    process::{ServerProcess, free_addr},
};
use confab_shared::{ChatMessage, ClientMsg, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const TOTAL: usize = 10_000;
/// Sends in flight without an ack.
const WINDOW: usize = 256;
/// The server is killed once this many sends are acknowledged.
const KILL_AFTER: usize = 4_000;

fn body(i: usize) -> String {
    format!("message {i:05}")
}

fn send(i: usize) -> Message {
    Message::text(
        ClientMsg::Send {
            room: "general".into(),
            body: body(i),
            client_id: format!("c{i}"),
            reply_to: None,
            files: Vec::new(),
        }
        .to_json(),
    )
}

/// Streams sends 0..TOTAL with a window of unacknowledged ones. Returns `Ok(())` when
/// all are acknowledged, or `Err(())` when the connection died: `acked` says where to
/// resume, and everything sent but not in `acked` is sent again.
async fn stream(
    client: &mut Client,
    acked: &mut BTreeMap<usize, u64>,
    kill_switch: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), ()> {
    let mut next = 0;
    let mut in_flight = 0;
    loop {
        while in_flight < WINDOW && next < TOTAL {
            if !acked.contains_key(&next) {
                client.ws.send(send(next)).await.map_err(|_| ())?;
                in_flight += 1;
            }
            next += 1;
        }
        if acked.len() == TOTAL {
            return Ok(());
        }
        let frame = match timeout(TIMEOUT, client.ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return Err(()),
            Err(_) => panic!("no frame for {TIMEOUT:?} with {in_flight} sends in flight"),
        };
        match serde_json::from_str::<ServerMsg>(frame.as_str()).expect("server JSON") {
            ServerMsg::Ack { client_id, seq, .. } => {
                let i: usize = client_id[1..].parse().expect("our client id");
                let before = acked.insert(i, seq);
                assert!(
                    before.is_none() || before == Some(seq),
                    "an ack never changes"
                );
                in_flight -= 1;
                if acked.len() >= KILL_AFTER
                    && let Some(kill) = kill_switch.take()
                {
                    let _ = kill.send(());
                }
            }
            ServerMsg::Error { code, message, .. } => panic!("send refused: {code}: {message}"),
            _ => {}
        }
    }
}

async fn connect_streamer(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    c.hello("streamer").await;
    c.join("general").await;
    c
}

/// Everything in #general from seq 0, following replay pages.
async fn read_all(addr: SocketAddr) -> Vec<ChatMessage> {
    let mut reader = Client::named(addr, "reader").await;
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        reader
            .send_json(&ClientMsg::Join {
                room: "general".into(),
                after: Some(after),
            })
            .await;
        match reader
            .recv_until(|m| matches!(m, ServerMsg::Replay { .. } | ServerMsg::Joined { .. }))
            .await
        {
            ServerMsg::Replay {
                messages, through, ..
            } => {
                assert!(through > after, "a replay page moves on");
                after = through;
                all.extend(messages);
            }
            ServerMsg::Joined { history, .. } => {
                all.extend(history);
                return all;
            }
            _ => unreachable!(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill_exactly_once_in_order() {
    let data = tempfile::tempdir().expect("data dir");
    let addr = free_addr();
    // Unlimited: the test streams as fast as acks allow.
    let unlimited = ["--rate-limit-per-sec", "1e9", "--rate-limit-burst", "1e9"];
    let server = ServerProcess::start_with(addr, data.path(), &unlimited).await;

    let mut acked = BTreeMap::new();
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel();
    let killer = tokio::spawn(async move {
        let _ = kill_rx.await;
        server.kill().await;
    });
    let mut client = connect_streamer(addr).await;
    let mut kill_switch = Some(kill_tx);
    let first = stream(&mut client, &mut acked, &mut kill_switch).await;
    assert!(first.is_err(), "the stream is cut by the kill");
    killer.await.expect("killer task");
    let acked_before_kill = acked.len();
    assert!((KILL_AFTER..TOTAL).contains(&acked_before_kill));

    let server = ServerProcess::start_with(addr, data.path(), &unlimited).await;
    let mut client = connect_streamer(addr).await;
    stream(&mut client, &mut acked, &mut None)
        .await
        .expect("the stream completes after the restart");

    let all = read_all(addr).await;
    let bodies: Vec<String> = all.iter().map(|m| m.body.clone()).collect();
    let expected: Vec<String> = (0..TOTAL).map(body).collect();
    assert_eq!(bodies.len(), TOTAL, "every message exactly once");
    assert_eq!(bodies, expected, "in send order");
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=TOTAL as u64).collect::<Vec<_>>(), "gap-free");
    for (i, seq) in &acked {
        assert_eq!(
            *seq,
            *i as u64 + 1,
            "the ack of message {i} named its stored seq"
        );
    }
    server.terminate().await;
}

#[tokio::test]
async fn rooms_members_and_history_are_there_after_a_clean_restart() {
    let data = tempfile::tempdir().expect("data dir");
    let addr = free_addr();
    let server = ServerProcess::start(addr, data.path()).await;
    // Accounts: members are remembered by account (guests belong only while there).
    let ada_cookie = common::sign_up(addr, "ada").await;
    let mut ada = Client::signed_in(addr, &ada_cookie).await;
    ada.create_room("ops").await;
    ada.join("ops").await;
    let bob_cookie = common::sign_up(addr, "bob").await;
    let mut bob = Client::signed_in(addr, &bob_cookie).await;
    bob.join("ops").await;
    ada.say("ops", "before the restart").await;
    server.terminate().await;

    let server = ServerProcess::start(addr, data.path()).await;
    let carol_cookie = common::sign_up(addr, "carol").await;
    let mut carol = Client::signed_in(addr, &carol_cookie).await;
    carol.send_json(&ClientMsg::ListRooms).await;
    carol.expect_room_list_with("ops").await;
    carol
        .send_json(&ClientMsg::Join {
            room: "ops".into(),
            after: None,
        })
        .await;
    match carol
        .recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
        .await
    {
        ServerMsg::Joined {
            members,
            member_count,
            online,
            history,
            ..
        } => {
            // A public room lists those online, and counts everyone who belongs.
            let handles: Vec<_> = members.iter().map(|p| p.user.as_str()).collect();
            assert_eq!(handles, ["carol"]);
            assert_eq!(member_count, 3);
            assert_eq!(online, ["carol"]);
            let bodies: Vec<_> = history.iter().map(|m| m.body.as_str()).collect();
            assert_eq!(bodies, ["before the restart"]);
        }
        _ => unreachable!(),
    }
    // Sequence numbers carry on.
    assert_eq!(carol.say("ops", "after").await.seq, 2);
    server.terminate().await;
}
