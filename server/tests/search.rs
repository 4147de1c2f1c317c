//! Search and opening a room far back (`fetch_around`), against the real binary: what a
//! person finds is exactly what they may see, as it is now.

mod common;

use common::{
    Client, fresh_client_id,
    process::{ServerProcess, free_addr},
};
use confab_shared::{ClientMsg, ServerMsg};

/// The binary, with room for the tests' bursts of messages.
async fn start(addr: std::net::SocketAddr, dir: &std::path::Path) -> ServerProcess {
    ServerProcess::start_with(
        addr,
        dir,
        &["--rate-limit-burst", "5000", "--rate-limit-per-sec", "5000"],
    )
    .await
}

/// The messages around one far back come in one answer, in their current state, with
/// whether there are more on each side.
#[tokio::test]
async fn a_room_opens_around_a_message_far_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let _server = start(addr, dir.path()).await;
    let mut ada = Client::in_room(addr, "ada", "general").await;
    for i in 1..=300 {
        ada.send_json(&ClientMsg::Send {
            room: "general".into(),
            body: format!("message {i}"),
            client_id: fresh_client_id(),
            reply_to: None,
            files: Vec::new(),
        })
        .await;
    }
    ada.recv_until(|m| matches!(m, ServerMsg::Message(m) if m.seq == 300))
        .await;
    ada.send_json(&ClientMsg::FetchAround {
        room: "general".into(),
        seq: 120,
    })
    .await;
    match ada
        .recv_until(|m| matches!(m, ServerMsg::Around { .. }))
        .await
    {
        ServerMsg::Around {
            room,
            seq,
            messages,
            older,
            newer,
        } => {
            assert_eq!(
                (room.as_str(), seq, older, newer),
                ("general", 120, true, true)
            );
            let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (70..=170).collect::<Vec<_>>());
            assert_eq!(messages[50].body, "message 120");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Someone not in the room is told to join it first.
    let mut bob = Client::named(addr, "bob").await;
    bob.send_json(&ClientMsg::FetchAround {
        room: "general".into(),
        seq: 120,
    })
    .await;
    bob.expect_error(confab_shared::ErrorCode::NotInRoom).await;
}
