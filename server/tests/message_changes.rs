//! Edits, deletions and reactions against the real binary: a client that was away while
//! others changed messages, across a SIGKILL and a restart, resumes with `after` and
//! ends with exactly the room the others see, having received each change once.

mod common;

use std::collections::BTreeMap;

use common::{
    Client, fresh_client_id,
    process::{ServerProcess, free_addr},
};
use confab_shared::{ChatMessage, ClientMsg, ServerMsg};

/// A client's copy of #general, kept the way the web client keeps it.
#[derive(Default, Debug)]
struct Copy {
    messages: BTreeMap<u64, ChatMessage>,
    /// Where a resume starts: the highest `through` or live `seq` seen.
    through: u64,
    /// Changes applied from live frames, by their seq: each must come once.
    changes_seen: Vec<u64>,
}

impl Copy {
    fn snapshot(&mut self, m: ChatMessage) {
        match self.messages.get(&m.seq) {
            Some(have) if have.revision() > m.revision() => {}
            _ => {
                self.messages.insert(m.seq, m);
            }
        }
    }

    /// Applies one frame; returns whether it was the `joined` that ends a join.
    fn observe(&mut self, msg: ServerMsg) -> bool {
        match msg {
            ServerMsg::Joined {
                history, through, ..
            } => {
                history.into_iter().for_each(|m| self.snapshot(m));
                self.through = self.through.max(through);
                return true;
            }
            ServerMsg::Replay {
                messages, through, ..
            } => {
                messages.into_iter().for_each(|m| self.snapshot(m));
                self.through = self.through.max(through);
            }
            ServerMsg::Message(m) => {
                self.through = self.through.max(m.seq);
                assert!(self.messages.insert(m.seq, m).is_none(), "a message once");
            }
            ServerMsg::Changed(c) => {
                assert!(
                    !self.changes_seen.contains(&c.seq),
                    "change {} twice",
                    c.seq
                );
                self.changes_seen.push(c.seq);
                self.through = self.through.max(c.seq);
                if let Some(m) = self.messages.get_mut(&c.target) {
                    m.apply(&c);
                }
            }
            _ => {}
        }
        false
    }
}

/// Joins #general (resuming after `copy.through` when `resume`), following replay
/// pages until `joined`.
async fn join(client: &mut Client, copy: &mut Copy, resume: bool) {
    loop {
        client
            .send_json(&ClientMsg::Join {
                room: "general".into(),
                after: resume.then_some(copy.through),
            })
            .await;
        let msg = client
            .recv_until(|m| matches!(m, ServerMsg::Replay { .. } | ServerMsg::Joined { .. }))
            .await;
        if copy.observe(msg) {
            return;
        }
        if !resume {
            unreachable!("a fresh join answers with joined");
        }
    }
}

/// Sends `msg` and waits for its ack, applying what arrives meanwhile to `copy`.
async fn acked(client: &mut Client, copy: &mut Copy, msg: ClientMsg) -> u64 {
    client.send_json(&msg).await;
    loop {
        match client.recv().await {
            ServerMsg::Ack { seq, .. } => return seq,
            ServerMsg::Error { code, message, .. } => panic!("refused: {code}: {message}"),
            other => {
                copy.observe(other);
            }
        }
    }
}

fn send(body: &str, reply_to: Option<u64>) -> ClientMsg {
    ClientMsg::Send {
        room: "general".into(),
        body: body.into(),
        client_id: fresh_client_id(),
        reply_to,
        files: Vec::new(),
    }
}

fn react(seq: u64, emoji: &str, add: bool) -> ClientMsg {
    let (room, emoji, client_id) = ("general".into(), emoji.into(), fresh_client_id());
    if add {
        ClientMsg::React {
            room,
            seq,
            emoji,
            client_id,
        }
    } else {
        ClientMsg::Unreact {
            room,
            seq,
            emoji,
            client_id,
        }
    }
}

/// Takes what is already queued for `client` (without waiting long) into `copy`.
async fn catch_up(client: &mut Client, copy: &mut Copy) {
    // A ping's pong comes after everything queued before it.
    client.send_json(&ClientMsg::Ping).await;
    loop {
        match client.recv().await {
            ServerMsg::Pong => return,
            other => {
                copy.observe(other);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_away_across_a_sigkill_resumes_to_exactly_the_room_others_see() {
    let data = tempfile::tempdir().expect("data dir");
    let addr = free_addr();
    let server = ServerProcess::start(addr, data.path()).await;
    let cookies: Vec<String> = futures_util::future::join_all(
        ["ada", "bob", "cy", "dee"].map(|u| common::sign_up(addr, u)),
    )
    .await;
    let mut ada = Client::signed_in(addr, &cookies[0]).await;
    let mut bob = Client::signed_in(addr, &cookies[1]).await;
    let mut cy = Client::signed_in(addr, &cookies[2]).await;
    let (mut ada_copy, mut bob_copy, mut cy_copy) =
        (Copy::default(), Copy::default(), Copy::default());
    join(&mut ada, &mut ada_copy, false).await;
    join(&mut bob, &mut bob_copy, false).await;
    join(&mut cy, &mut cy_copy, false).await;

    let mut seqs = Vec::new();
    for i in 0..6 {
        seqs.push(acked(&mut ada, &mut ada_copy, send(&format!("ada {i}"), None)).await);
    }
    let bobs = acked(&mut bob, &mut bob_copy, send("bob's first", None)).await;
    catch_up(&mut cy, &mut cy_copy).await;
    assert_eq!(cy_copy.messages.len(), 7);
    // Cy goes away.
    drop(cy);

    let ada_edit = ClientMsg::Edit {
        room: "general".into(),
        seq: seqs[0],
        body: "ada 0, edited".into(),
        client_id: fresh_client_id(),
    };
    acked(&mut ada, &mut ada_copy, ada_edit).await;
    let delete = ClientMsg::Delete {
        room: "general".into(),
        seq: seqs[1],
        client_id: fresh_client_id(),
    };
    acked(&mut ada, &mut ada_copy, delete).await;
    acked(&mut bob, &mut bob_copy, react(seqs[2], "\u{1F44D}", true)).await;
    acked(&mut ada, &mut ada_copy, react(seqs[2], "\u{1F44D}", true)).await;
    acked(&mut bob, &mut bob_copy, react(bobs, "\u{1F389}", true)).await;
    acked(&mut bob, &mut bob_copy, react(bobs, "\u{1F389}", false)).await;
    acked(&mut bob, &mut bob_copy, react(seqs[3], "\u{1F680}", true)).await;
    acked(
        &mut bob,
        &mut bob_copy,
        send("replying to a deleted one", Some(seqs[1])),
    )
    .await;
    acked(&mut bob, &mut bob_copy, send("hey @cy", Some(seqs[0]))).await;
    catch_up(&mut ada, &mut ada_copy).await;
    catch_up(&mut bob, &mut bob_copy).await;
    drop((ada, bob));

    // Everything above was acknowledged, so committed: a SIGKILL loses none of it.
    server.kill().await;
    let server = ServerProcess::start(addr, data.path()).await;

    let mut cy = Client::signed_in(addr, &cookies[2]).await;
    let away_from = cy_copy.through;
    join(&mut cy, &mut cy_copy, true).await;
    assert!(cy_copy.through > away_from);
    assert!(cy_copy.changes_seen.is_empty(), "no change came live to cy");

    // Whoever joins afresh now sees the room as it is.
    let mut dee = Client::signed_in(addr, &cookies[3]).await;
    let mut dee_copy = Copy::default();
    join(&mut dee, &mut dee_copy, false).await;
    assert_eq!(dee_copy.through, cy_copy.through);
    let view = |copy: &Copy| -> Vec<ChatMessage> {
        copy.messages
            .values()
            .map(|m| ChatMessage {
                rev: m.revision(),
                ..m.clone()
            })
            .collect()
    };
    assert_eq!(
        view(&cy_copy),
        view(&dee_copy),
        "cy resumed to the room as it is"
    );
    assert_eq!(
        view(&ada_copy),
        view(&dee_copy),
        "as ada, who saw it happen live"
    );
    assert_eq!(view(&bob_copy), view(&dee_copy), "as bob");

    let room = view(&dee_copy);
    let by_seq = |seq| room.iter().find(|m| m.seq == seq).expect("message");
    assert_eq!(by_seq(seqs[0]).body, "ada 0, edited");
    assert!(by_seq(seqs[0]).edited.is_some());
    assert!(by_seq(seqs[1]).deleted && by_seq(seqs[1]).body.is_empty());
    assert_eq!(by_seq(seqs[2]).reactions[0].users, ["bob", "ada"]);
    assert!(by_seq(bobs).reactions.is_empty());
    let reply = room
        .iter()
        .find(|m| m.body == "replying to a deleted one")
        .expect("reply");
    assert!(reply.reply_to.as_ref().is_some_and(|q| q.deleted));
    server.terminate().await;
}
