//! Files on their way to a room, as the view shows them: those attached in a composer
//! and not sent yet, the bytes sent of each upload, and the last refusal per room (for
//! its composer). The files themselves (browser `File` objects) never enter the state:
//! the upload service ([`crate::socket`]) keeps them in memory under a key, and the
//! state names them by it. A message sharing files is one outbox entry ([`Pending`]
//! with [`PendingFile`]s): see `resume/files.rs` for how it waits for its uploads.
//!
//! [`Pending`]: super::Pending

use std::collections::BTreeMap;

use confab_shared::{Attachment, limits};
use serde::{Deserialize, Serialize};

use super::State;

/// A file of a message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFile {
    /// This page's handle on the browser's file: meaningless after a reload, when the
    /// bytes are gone (see `lost`).
    pub key: String,
    pub name: String,
    pub size: u64,
    /// What the server answered to the upload; `None` until it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<Attachment>,
    /// The page was reloaded before the file was uploaded: the browser kept only its
    /// name, and the person has to attach it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lost: bool,
}

/// A file attached in a composer, not sent yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub key: String,
    pub name: String,
    pub size: u64,
}

/// How far an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub sent: u64,
    pub total: u64,
}

impl Progress {
    /// Whole percent sent, for the label next to the bar.
    pub fn percent(self) -> u64 {
        match self.total {
            0 => 0,
            total => (self.sent.min(total) * 100) / total,
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uploads {
    /// Files attached in each room's composer, in the order attached.
    pub attached: BTreeMap<String, Vec<LocalFile>>,
    /// Uploads under way, by file key.
    pub progress: BTreeMap<String, Progress>,
    /// Why the last file was refused, per room: said in that room's composer.
    pub errors: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadAction {
    /// Files were attached in `room`'s composer (beyond
    /// [`limits::MAX_FILES_PER_MESSAGE`] they are left out, with a word why).
    Attached {
        room: String,
        files: Vec<LocalFile>,
    },
    /// The person took a file out of the composer.
    Removed {
        room: String,
        key: String,
    },
    /// The composer's files left with a message.
    Sent {
        room: String,
    },
    /// Bytes sent of an upload.
    Progress {
        key: String,
        sent: u64,
        total: u64,
    },
    /// An upload ended, however.
    Finished {
        key: String,
    },
    /// The server (or the browser) refused a file for `room`; `message` says why.
    Refused {
        room: String,
        message: String,
    },
    DismissError {
        room: String,
    },
}

/// What a person is told when they attach more files than one message can share.
pub fn too_many_files(left_out: usize) -> String {
    let files = if left_out == 1 {
        "file was"
    } else {
        "files were"
    };
    format!(
        "A message can share at most {} files: {left_out} {files} left out.",
        limits::MAX_FILES_PER_MESSAGE
    )
}

impl Uploads {
    /// The files attached in `room`'s composer.
    pub fn attached_in(&self, room: &str) -> &[LocalFile] {
        self.attached.get(room).map_or(&[], Vec::as_slice)
    }

    /// How many more files `room`'s composer takes.
    pub fn room_left(&self, room: &str) -> usize {
        limits::MAX_FILES_PER_MESSAGE.saturating_sub(self.attached_in(room).len())
    }

    pub fn error_in(&self, room: &str) -> Option<&str> {
        self.errors.get(room).map(String::as_str)
    }

    fn apply(&mut self, action: UploadAction) {
        match action {
            UploadAction::Attached { room, mut files } => {
                let left = self.room_left(&room);
                if files.len() > left {
                    let message = too_many_files(files.len() - left);
                    files.truncate(left);
                    self.errors.insert(room.clone(), message);
                } else {
                    // A new try: the last refusal is old news.
                    self.errors.remove(&room);
                }
                if !files.is_empty() {
                    self.attached.entry(room).or_default().extend(files);
                }
            }
            UploadAction::Removed { room, key } => {
                if let Some(files) = self.attached.get_mut(&room) {
                    files.retain(|f| f.key != key);
                    if files.is_empty() {
                        self.attached.remove(&room);
                    }
                }
            }
            UploadAction::Sent { room } => {
                self.attached.remove(&room);
                self.errors.remove(&room);
            }
            UploadAction::Progress { key, sent, total } => {
                self.progress.insert(key, Progress { sent, total });
            }
            UploadAction::Finished { key } => {
                self.progress.remove(&key);
            }
            UploadAction::Refused { room, message } => {
                self.errors.insert(room, message);
            }
            UploadAction::DismissError { room } => {
                self.errors.remove(&room);
            }
        }
    }
}

impl State {
    pub(super) fn on_upload(&mut self, action: UploadAction) {
        self.uploads.apply(action);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str) -> LocalFile {
        LocalFile {
            key: key.into(),
            name: format!("{key}.txt"),
            size: 3,
        }
    }

    fn attach(u: &mut Uploads, room: &str, keys: &[&str]) {
        u.apply(UploadAction::Attached {
            room: room.into(),
            files: keys.iter().map(|k| file(k)).collect(),
        });
    }

    #[test]
    fn attached_files_stay_with_their_room_until_sent() {
        let mut u = Uploads::default();
        attach(&mut u, "general", &["a", "b"]);
        attach(&mut u, "random", &["c"]);
        assert_eq!(u.attached_in("general"), &[file("a"), file("b")]);
        u.apply(UploadAction::Removed {
            room: "general".into(),
            key: "a".into(),
        });
        assert_eq!(u.attached_in("general"), &[file("b")]);
        u.apply(UploadAction::Sent {
            room: "general".into(),
        });
        assert!(u.attached_in("general").is_empty());
        assert_eq!(u.attached_in("random"), &[file("c")]);
        u.apply(UploadAction::Removed {
            room: "random".into(),
            key: "c".into(),
        });
        assert!(u.attached.is_empty(), "no empty lists kept");
    }

    #[test]
    fn no_more_files_than_a_message_shares() {
        let mut u = Uploads::default();
        let keys: Vec<String> = (0..limits::MAX_FILES_PER_MESSAGE - 1)
            .map(|i| format!("k{i}"))
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        attach(&mut u, "general", &keys);
        assert_eq!(u.room_left("general"), 1);
        assert_eq!(u.error_in("general"), None);
        attach(&mut u, "general", &["x", "y", "z"]);
        assert_eq!(
            u.attached_in("general").len(),
            limits::MAX_FILES_PER_MESSAGE
        );
        assert_eq!(u.attached_in("general").last(), Some(&file("x")));
        assert_eq!(u.error_in("general"), Some(too_many_files(2).as_str()));
        assert_eq!(u.room_left("general"), 0);
    }

    #[test]
    fn a_refusal_shows_until_dismissed_sent_or_tried_again() {
        let mut u = Uploads::default();
        let refused = |u: &mut Uploads| {
            u.apply(UploadAction::Refused {
                room: "general".into(),
                message: "Too big.".into(),
            });
        };
        refused(&mut u);
        assert_eq!(u.error_in("general"), Some("Too big."));
        assert_eq!(u.error_in("random"), None);
        u.apply(UploadAction::DismissError {
            room: "general".into(),
        });
        assert_eq!(u.error_in("general"), None);
        refused(&mut u);
        attach(&mut u, "general", &["a"]);
        assert_eq!(u.error_in("general"), None);
        refused(&mut u);
        u.apply(UploadAction::Sent {
            room: "general".into(),
        });
        assert_eq!(u.error_in("general"), None);
    }

    #[test]
    fn progress_is_kept_while_the_upload_runs() {
        let mut u = Uploads::default();
        u.apply(UploadAction::Progress {
            key: "a".into(),
            sent: 50,
            total: 200,
        });
        assert_eq!(u.progress["a"].percent(), 25);
        u.apply(UploadAction::Finished { key: "a".into() });
        assert!(u.progress.is_empty());
    }

    /// The ack of a message sharing files shows them at once: the broadcast that
    /// follows is the same message, dropped as a duplicate.
    #[test]
    fn an_acknowledged_message_shows_its_uploaded_files() {
        use confab_shared::{Person, ServerMsg};

        use crate::state::{Action, Pending};

        let mut s = State {
            me: Some(Person {
                user: "ada".into(),
                name: "Ada".into(),
                guest: false,
            }),
            ..State::default()
        };
        let server = |s: &mut State, msg| s.apply(Action::Server { msg, now: 0.0 });
        server(
            &mut s,
            ServerMsg::Joined {
                room: "general".into(),
                members: vec![],
                member_count: 1,
                online: vec![],
                history: vec![],
                through: 0,
                read: 0,
                unread: 0,
                mentions: 0,
            },
        );
        let attachment = Attachment {
            id: "f1".into(),
            name: "cat.png".into(),
            size: 3,
            mime: "image/png".into(),
            image: None,
        };
        s.apply(Action::Outbox(vec![Pending {
            client_id: "c1".into(),
            room: "general".into(),
            body: String::new(),
            failed: None,
            reply_to: None,
            change: None,
            files: vec![PendingFile {
                key: "k".into(),
                name: "cat.png".into(),
                size: 3,
                uploaded: Some(attachment.clone()),
                lost: false,
            }],
        }]));
        server(
            &mut s,
            ServerMsg::Ack {
                room: "general".into(),
                client_id: "c1".into(),
                id: 1,
                seq: 1,
                ts: 0,
            },
        );
        let shown = &s.joined["general"].messages[0];
        assert_eq!(shown.files, [attachment]);
        assert_eq!(shown.body, "");
    }

    #[test]
    fn percent_never_passes_100_nor_divides_by_zero() {
        assert_eq!(Progress { sent: 0, total: 0 }.percent(), 0);
        assert_eq!(Progress { sent: 9, total: 4 }.percent(), 100);
        assert_eq!(Progress { sent: 1, total: 3 }.percent(), 33);
    }
}
