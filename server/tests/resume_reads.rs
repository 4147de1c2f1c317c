//! Resuming against the real binary, whose history reads run on reader threads: many
//! clients resume at once while messages keep arriving, and each gets every message
//! after its `after` exactly once, in order (`hub/reads.rs`).

mod common;

use common::{
    Client,
    process::{ServerProcess, free_addr},
};
use confab_shared::{ClientMsg, ServerMsg};

const ROOM: &str = "general";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_during_live_traffic_get_every_message_once_in_order() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let unlimited = [
        "--rate-limit-per-sec",
        "100000",
        "--rate-limit-burst",
        "100000",
    ];
    let server = ServerProcess::start_with(addr, data.path(), &unlimited).await;
    let mut ada = Client::in_room(addr, "ada", ROOM).await;
    for i in 1..=30 {
        ada.say(ROOM, &format!("before {i}")).await;
    }
    let mut resumers = Vec::new();
    for i in 0..20 {
        resumers.push(Client::named(addr, &format!("r{i}")).await);
    }
    for r in &mut resumers {
        r.send_json(&ClientMsg::Join {
            room: ROOM.into(),
            after: Some(10),
        })
        .await;
    }
    // Committed while (some of) the reads are in flight.
    for i in 31..=50 {
        ada.say(ROOM, &format!("during {i}")).await;
    }
    for (n, r) in resumers.iter_mut().enumerate() {
        let mut seqs = Vec::new();
        while seqs.last() != Some(&50) {
            match r.recv().await {
                ServerMsg::Joined { history, .. } => {
                    assert!(seqs.is_empty(), "resumer {n}: messages before joined");
                    seqs.extend(history.iter().map(|m| m.seq));
                }
                ServerMsg::Message(m) => {
                    assert!(
                        !seqs.is_empty() || m.seq <= 10,
                        "resumer {n}: live before joined"
                    );
                    seqs.push(m.seq);
                }
                _ => {}
            }
        }
        assert_eq!(
            seqs,
            (11..=50).collect::<Vec<u64>>(),
            "resumer {n}: every message after 10 exactly once, in order"
        );
    }
    server.terminate().await;
}
