//! The export format of `confab-server export` and `import`: a room's or every room's
//! history as JSON lines, for people who leave (their team's history, readable by
//! anything) and for moving history between servers. The same on either store:
//! `store::sqlite::history` exports and imports the embedded store,
//! `store::postgres::history` exports a cluster's.
//!
//! A file is a line per room ([`RoomLine`]: its kind, title, owner, members and the
//! last `seq` of its log) followed by a line per message of that room in `seq` order
//! ([`MessageLine`]: author, time, text, edit and deletion state, mentions, reactions
//! and the files it shares, by reference: a file's bytes are not in it). Rooms come in
//! the byte order of their ids, members and mentions in the byte order of usernames,
//! reactions in the order they were added. The lines are tagged (`"type": "room"` /
//! `"message"`), so a reader can skip what it does not need. The log of edits and
//! reactions (who did what when) is not in it: the state it led to is.

use std::io::Write;

use serde::{Deserialize, Serialize};

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Room(RoomLine),
    Message(MessageLine),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomLine {
    pub room: String,
    /// `public`, `private` or `direct`.
    pub kind: String,
    pub title: String,
    pub owner: Option<String>,
    pub created_at: i64,
    /// Usernames, sorted.
    pub members: Vec<String>,
    /// The last `seq` of the room's log (messages and changes).
    pub last_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageLine {
    pub room: String,
    pub seq: u64,
    pub id: u64,
    /// The author's username, and the display name they had when they sent it.
    pub from: String,
    pub name: String,
    /// The author's id for this send (what makes a repeat a repeat).
    pub client_id: String,
    /// Sent at, ms since the Unix epoch.
    pub ts: i64,
    /// Empty when deleted.
    pub body: String,
    /// The `seq` of the message it answers, in the same room.
    pub reply_to: Option<u64>,
    /// Last edited at, ms since the Unix epoch.
    pub edited_at: Option<i64>,
    pub deleted: bool,
    /// The `seq` of its last change (0: none).
    pub rev: u64,
    /// Usernames it mentions, sorted.
    pub mentions: Vec<String>,
    pub reactions: Vec<ReactionLine>,
    pub files: Vec<FileLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionLine {
    pub emoji: String,
    pub user: String,
    /// The `seq` of the change that added it: the order reactions are shown in.
    pub added: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLine {
    /// The upload's id, as in its download URL.
    pub id: String,
    pub name: String,
    /// SHA-256 of the bytes, lower-case hex: where they are in a data directory.
    pub sha256: String,
    pub size: u64,
    pub mime: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// What an export wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub rooms: u64,
    pub messages: u64,
}

/// Writes one line.
pub fn write_line(out: &mut dyn Write, line: &Line) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_tagged_and_read_back() {
        let line = Line::Room(RoomLine {
            room: "general".into(),
            kind: "public".into(),
            title: "general".into(),
            owner: None,
            created_at: 0,
            members: vec![],
            last_seq: 3,
        });
        let text = serde_json::to_string(&line).expect("encodes");
        assert!(
            text.starts_with(r#"{"type":"room","room":"general""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Line>(&text).expect("decodes"), line);
    }
}
