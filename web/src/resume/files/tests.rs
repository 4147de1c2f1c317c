//! The outbox with files, natively: a message waits for its uploads, a refusal sends
//! nothing, a reload loses only what was not uploaded.

use confab_shared::{ChatMessage, ClientMsg, ErrorCode, PROTOCOL_VERSION, Person, ServerMsg};

use super::*;
use crate::{
    resume::Outbox,
    state::{PendingChange, PendingFile},
};

fn welcome() -> ServerMsg {
    ServerMsg::Welcome {
        protocol: PROTOCOL_VERSION,
        epoch: "e1".into(),
        you: Person {
            user: "ada".into(),
            name: "Ada".into(),
            guest: false,
        },
        rooms: vec![],
    }
}

fn joined(room: &str) -> ServerMsg {
    ServerMsg::Joined {
        room: room.into(),
        members: vec![],
        member_count: 0,
        online: vec![],
        through: 0,
        history: Vec::<ChatMessage>::new(),
        read: 0,
        unread: 0,
        mentions: 0,
    }
}

/// Welcomed, with `general` joined.
fn connected(outbox: Outbox) -> Resume {
    let mut r = Resume::new(outbox);
    r.start(None, false);
    r.new_connection();
    r.observe(&welcome());
    r.observe(&joined("general"));
    r
}

fn file(key: &str) -> PendingFile {
    PendingFile {
        key: key.into(),
        name: format!("{key}.png"),
        size: 10,
        uploaded: None,
        lost: false,
    }
}

fn attachment(key: &str) -> Attachment {
    Attachment {
        id: format!("id-{key}"),
        name: format!("{key}.png"),
        size: 10,
        mime: "image/png".into(),
        image: None,
    }
}

fn with_files(client_id: &str, body: &str, keys: &[&str]) -> Pending {
    Pending {
        client_id: client_id.into(),
        room: "general".into(),
        body: body.into(),
        failed: None,
        reply_to: Some(7),
        change: None,
        files: keys.iter().map(|k| file(k)).collect(),
    }
}

fn send(client_id: &str, body: &str, ids: &[&str]) -> ClientMsg {
    ClientMsg::Send {
        room: "general".into(),
        body: body.into(),
        client_id: client_id.into(),
        reply_to: Some(7),
        files: ids.iter().map(|k| format!("id-{k}")).collect(),
    }
}

fn keys_due(r: &Resume) -> Vec<String> {
    r.uploads_due().into_iter().map(|d| d.key).collect()
}

#[test]
fn a_message_goes_once_every_file_is_uploaded() {
    let mut r = connected(Outbox::default());
    assert_eq!(
        r.send(with_files("c1", "look", &["a", "b"])),
        None,
        "files first"
    );
    assert_eq!(keys_due(&r), ["a", "b"]);
    assert!(r.holds_file("a") && r.holds_file("b") && !r.holds_file("z"));
    assert_eq!(r.uploaded("a", attachment("a")), None, "b is not there yet");
    assert_eq!(keys_due(&r), ["b"]);
    assert_eq!(r.resend_due(), [], "not before its files");
    assert_eq!(
        r.uploaded("b", attachment("b")),
        Some(send("c1", "look", &["a", "b"]))
    );
    assert_eq!(keys_due(&r), Vec::<String>::new());
    assert_eq!(r.resend_due(), [send("c1", "look", &["a", "b"])]);
    let effects = r.observe(&ServerMsg::Ack {
        room: "general".into(),
        client_id: "c1".into(),
        id: 1,
        seq: 1,
        ts: 0,
    });
    assert!(effects.outbox_changed);
    assert!(!r.holds_file("a"), "acknowledged: its files can go");
}

#[test]
fn files_uploaded_while_disconnected_send_when_the_room_is_joined() {
    let mut r = connected(Outbox::default());
    r.new_connection();
    assert_eq!(r.send(with_files("c1", "", &["a"])), None);
    assert_eq!(r.uploaded("a", attachment("a")), None, "not joined");
    r.observe(&welcome());
    let effects = r.observe(&joined("general"));
    assert_eq!(effects.send, [send("c1", "", &["a"])], "with an empty body");
}

#[test]
fn a_joined_room_does_not_send_a_message_whose_files_are_not_up() {
    let mut r = connected(Outbox::default());
    r.send(with_files("c1", "x", &["a"]));
    r.new_connection();
    r.observe(&welcome());
    assert_eq!(r.observe(&joined("general")).send, []);
    assert_eq!(
        keys_due(&r),
        ["a"],
        "still to upload, after the new welcome"
    );
}

#[test]
fn a_refused_file_sends_nothing_and_says_why() {
    let mut r = connected(Outbox::default());
    r.send(with_files("c1", "two files", &["a", "big"]));
    r.uploaded("a", attachment("a"));
    r.file_refused("big", "Too large.");
    let p = &r.outbox().pending[0];
    assert_eq!(
        p.failed.as_deref(),
        Some("big.png was not accepted: Too large.")
    );
    assert_eq!(p.files.len(), 1, "the refused file left the message");
    assert_eq!(r.resend_due(), [], "nothing goes by itself");
    assert_eq!(keys_due(&r), Vec::<String>::new());
    // Retry sends the rest.
    assert_eq!(r.retry("c1"), Some(send("c1", "two files", &["a"])));
}

#[test]
fn a_message_that_was_only_a_refused_file_goes_altogether() {
    let mut r = connected(Outbox::default());
    r.send(with_files("c1", "  ", &["big"]));
    r.file_refused("big", "Too large.");
    assert!(r.outbox().pending.is_empty());
}

#[test]
fn cancelling_a_file_sends_the_rest_or_nothing() {
    let mut r = connected(Outbox::default());
    r.send(with_files("c1", "", &["a", "slow"]));
    r.uploaded("a", attachment("a"));
    assert_eq!(r.cancel_file("slow"), Some(send("c1", "", &["a"])));
    let mut r = connected(Outbox::default());
    r.send(with_files("c2", "", &["slow"]));
    assert_eq!(r.cancel_file("slow"), None);
    assert!(r.outbox().pending.is_empty(), "nothing left to send");
    let mut r = connected(Outbox::default());
    r.send(with_files("c3", "text stays", &["slow"]));
    assert_eq!(r.cancel_file("slow"), Some(send("c3", "text stays", &[])));
}

#[test]
fn a_failed_upload_waits_for_retry_which_uploads_again() {
    let mut r = connected(Outbox::default());
    r.send(with_files("c1", "x", &["a"]));
    r.upload_failed("a", "a.png could not be uploaded.");
    assert_eq!(
        r.outbox().pending[0].failed.as_deref(),
        Some("a.png could not be uploaded.")
    );
    assert_eq!(keys_due(&r), Vec::<String>::new(), "waits for the person");
    assert_eq!(r.retry("c1"), None, "its file uploads first");
    assert_eq!(keys_due(&r), ["a"]);
}

#[test]
fn after_a_reload_files_not_uploaded_are_lost_and_said_so() {
    let mut uploaded = file("done");
    uploaded.uploaded = Some(attachment("done"));
    let saved = Outbox {
        user: Some("ada".into()),
        pending: vec![
            Pending {
                files: vec![uploaded.clone(), file("gone")],
                ..with_files("c1", "caption", &[])
            },
            with_files("c2", "", &["gone2"]),
            with_files("c3", "plain", &[]),
        ],
        epoch: Some("e1".into()),
    };
    // Through storage, as a reload reads it.
    let saved: Outbox =
        serde_json::from_str(&serde_json::to_string(&saved).expect("encodes")).expect("decodes");
    let mut r = connected(saved);
    let pending = &r.outbox().pending;
    assert_eq!(pending[0].failed.as_deref(), Some(LOST_FILES));
    assert!(pending[0].files[1].lost && !pending[0].files[0].lost);
    assert_eq!(pending[1].failed.as_deref(), Some(LOST_FILES));
    assert_eq!(
        pending[2].failed, None,
        "a message without files is untouched"
    );
    assert_eq!(
        keys_due(&r),
        Vec::<String>::new(),
        "nothing to upload them from"
    );
    // Retry sends the text and what was uploaded; a message that was only lost files goes.
    assert_eq!(r.retry("c1"), Some(send("c1", "caption", &["done"])));
    assert_eq!(r.retry("c2"), None);
    assert_eq!(r.outbox().pending.len(), 2);
    assert!(r.outbox().pending.iter().all(|p| p.client_id != "c2"));
}

#[test]
fn an_outbox_saved_before_files_existed_still_loads() {
    let saved = r#"{"user":"ada","pending":[{"client_id":"c1","room":"general","body":"hi","failed":null,"change":{"kind":"delete","seq":3}}]}"#;
    let outbox: Outbox = serde_json::from_str(saved).expect("loads");
    assert!(outbox.pending[0].files.is_empty());
    assert_eq!(
        outbox.pending[0].change,
        Some(PendingChange::Delete { seq: 3 })
    );
}

#[test]
fn uploads_the_server_no_longer_knows_are_uploaded_again_on_retry() {
    let mut r = connected(Outbox::default());
    r.send(with_files("c1", "x", &["a"]));
    assert!(r.uploaded("a", attachment("a")).is_some());
    let effects = r.observe(&ServerMsg::Error {
        code: ErrorCode::UnknownFile,
        message: "No such upload.".into(),
        room: Some("general".into()),
        client_id: Some("c1".into()),
        retry_after_ms: None,
    });
    assert!(effects.outbox_changed);
    assert_eq!(
        r.outbox().pending[0].failed.as_deref(),
        Some("No such upload.")
    );
    assert_eq!(keys_due(&r), Vec::<String>::new(), "waits for the person");
    assert_eq!(r.retry("c1"), None, "not with the old id");
    assert_eq!(keys_due(&r), ["a"], "uploaded again first");
    assert_eq!(
        r.uploaded("a", attachment("a")),
        Some(send("c1", "x", &["a"]))
    );
}
