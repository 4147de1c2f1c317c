//! Access changes are durable, against the real binary: members removed while the store
//! writer's queue is full (a queue of one write, and a flood of messages keeping it full)
//! are still removed after a restart. Before, such a removal took effect in memory and its
//! write was dropped ("not stored: the store writer is busy"): after the restart the
//! removed member was back in the room.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::{
    Client, fresh_client_id,
    process::{ServerProcess, free_addr},
    sign_up,
};
use confab_shared::{ClientMsg, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Private rooms Bob is removed from during the flood.
const ROOMS: usize = 20;
/// Guests flooding #general.
const FLOODERS: usize = 8;

/// The private rooms in `client`'s room list, asked for now.
async fn private_rooms(client: &mut Client) -> Vec<String> {
    client.send_json(&ClientMsg::ListRooms).await;
    match client
        .recv_until(|m| matches!(m, ServerMsg::Rooms { .. }))
        .await
    {
        ServerMsg::Rooms { rooms } => rooms
            .into_iter()
            .filter(|r| r.name.starts_with("_p"))
            .map(|r| r.name)
            .collect(),
        _ => unreachable!("filtered above"),
    }
}

/// A guest sending to #general as fast as it can until `stop`, reading whatever comes.
fn flood(client: Client, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let (mut tx, mut rx) = client.ws.split();
    tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let send = ClientMsg::Send {
                room: "general".into(),
                body: "flood".into(),
                client_id: fresh_client_id(),
                reply_to: None,
                files: Vec::new(),
            };
            if tx.send(Message::text(send.to_json())).await.is_err() {
                return;
            }
        }
    })
}

#[tokio::test]
async fn members_removed_while_the_writer_queue_is_full_stay_removed_after_a_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let flags = [
        "--writer-queue",
        "1",
        "--room-changes-burst",
        "1000",
        "--rate-limit-per-sec",
        "100000",
        "--rate-limit-burst",
        "100000",
    ];
    let server = ServerProcess::start_with(addr, data.path(), &flags).await;
    let ada_cookie = sign_up(addr, "ada").await;
    let bob_cookie = sign_up(addr, "bob").await;
    let mut ada = Client::signed_in(addr, &ada_cookie).await;
    let mut bob = Client::signed_in(addr, &bob_cookie).await;
    let mut rooms = Vec::new();
    for n in 0..ROOMS {
        let id = ada.create_private(&format!("plans-{n}")).await;
        ada.join(&id).await;
        ada.send_json(&ClientMsg::Invite {
            room: id.clone(),
            user: "bob".into(),
        })
        .await;
        ada.recv_until(|m| matches!(m, ServerMsg::Members { room, members } if *room == id && members.len() == 2))
            .await;
        rooms.push(id);
    }
    let mut listed = private_rooms(&mut bob).await;
    listed.sort();
    let mut expected = rooms.clone();
    expected.sort();
    assert_eq!(listed, expected, "Bob is in all {ROOMS} rooms");

    let stop = Arc::new(AtomicBool::new(false));
    let mut flooders = Vec::new();
    for i in 0..FLOODERS {
        let guest = Client::in_room(addr, &format!("flood{i}"), "general").await;
        flooders.push(flood(guest, Arc::clone(&stop)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in &rooms {
        ada.send_json(&ClientMsg::Remove {
            room: id.clone(),
            user: "bob".into(),
        })
        .await;
    }
    // Each removal is answered (to Ada, in the room) with the members without Bob, once
    // stored; none is refused.
    let mut done = 0;
    while done < ROOMS {
        match ada
            .recv_until(|m| matches!(m, ServerMsg::Members { .. } | ServerMsg::Error { .. }))
            .await
        {
            ServerMsg::Members { members, .. } if members.len() == 1 => done += 1,
            ServerMsg::Error { code, message, .. } => {
                panic!("a removal was refused: {code:?} {message}")
            }
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.await;
    }
    assert!(private_rooms(&mut bob).await.is_empty());
    drop((ada, bob));
    server.kill().await;

    let server = ServerProcess::start_with(addr, data.path(), &flags).await;
    let mut bob = Client::signed_in(addr, &bob_cookie).await;
    assert_eq!(
        private_rooms(&mut bob).await,
        Vec::<String>::new(),
        "every removed membership is still removed after a restart"
    );
    drop(bob);
    server.terminate().await;
}
