//! A message that shares files, in the outbox: its files are uploaded first (over HTTP,
//! by the upload service), and its `send`, naming what the uploads answered, goes only
//! once every one is. Until then it waits like any message, through disconnects: an
//! upload cut off goes again after the next welcome, and the `send` when its room is
//! joined.
//!
//! The outbox is saved to local storage, the files' bytes are not (a browser `File`
//! cannot be stored there, and files can be large). So after a reload a file that was
//! not uploaded yet is *lost*: the message stays, refused with why, its text and the
//! files already uploaded kept; Retry sends those without the lost ones.

use confab_shared::{Attachment, ClientMsg};

use super::{Outbox, Resume};
use crate::state::Pending;

/// Why a message whose files the page forgot waits (see the module documentation).
pub const LOST_FILES: &str =
    "the page was reloaded before its files were uploaded: attach them again";

/// A file to upload now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub room: String,
    pub key: String,
    pub name: String,
}

impl Pending {
    /// Whether the message can be sent: every file of it uploaded.
    pub fn ready(&self) -> bool {
        self.files.iter().all(|f| f.uploaded.is_some())
    }

    /// The ids its `send` names.
    pub(super) fn file_ids(&self) -> Vec<String> {
        self.files
            .iter()
            .filter_map(|f| f.uploaded.as_ref().map(|a| a.id.clone()))
            .collect()
    }

    /// Nothing left to send: no text, no file.
    fn is_empty(&self) -> bool {
        self.change.is_none() && self.body.trim().is_empty() && self.files.is_empty()
    }
}

impl Outbox {
    /// An outbox read from storage: its files not uploaded yet are gone with the page
    /// that had them. Returns whether anything changed.
    pub fn forget_unsaved_files(&mut self) -> bool {
        let mut changed = false;
        for p in &mut self.pending {
            let mut lost = false;
            for f in p.files.iter_mut().filter(|f| f.uploaded.is_none()) {
                lost = true;
                changed |= !f.lost;
                f.lost = true;
            }
            if lost && p.failed.is_none() {
                p.failed = Some(LOST_FILES.to_owned());
                changed = true;
            }
        }
        changed
    }
}

impl Resume {
    /// Every file that should be uploading now: those of messages on their way (not
    /// refused), not uploaded yet, oldest message first. The service starts those not
    /// already under way.
    pub fn uploads_due(&self) -> Vec<Due> {
        self.outbox
            .pending
            .iter()
            .filter(|p| p.failed.is_none())
            .flat_map(|p| {
                p.files
                    .iter()
                    .filter(|f| f.uploaded.is_none() && !f.lost)
                    .map(|f| Due {
                        room: p.room.clone(),
                        key: f.key.clone(),
                        name: f.name.clone(),
                    })
            })
            .collect()
    }

    /// Whether file `key` still belongs to a message of the outbox (and so is worth
    /// keeping and uploading).
    pub fn holds_file(&self, key: &str) -> bool {
        self.outbox
            .pending
            .iter()
            .any(|p| p.files.iter().any(|f| f.key == key))
    }

    /// File `key` is uploaded: returns the `send` to make now, if that was the last
    /// file its message waited for and its room is joined.
    pub fn uploaded(&mut self, key: &str, attachment: Attachment) -> Option<ClientMsg> {
        let live = &self.live;
        let p = self
            .outbox
            .pending
            .iter_mut()
            .find(|p| p.files.iter().any(|f| f.key == key))?;
        let f = p.files.iter_mut().find(|f| f.key == key)?;
        f.uploaded = Some(attachment);
        (p.ready() && p.failed.is_none() && live.contains(&p.room)).then(|| p.to_send())
    }

    /// The server refused file `key` for what it is (too large, over the person's
    /// budget, no room to store it): it leaves its message, which waits, saying why,
    /// for Retry (the rest goes) or Discard. A message left with nothing to send goes
    /// altogether. Nothing is sent meanwhile.
    pub fn file_refused(&mut self, key: &str, why: &str) {
        let Some(p) = self.message_with(key) else {
            return;
        };
        let name = p
            .files
            .iter()
            .find(|f| f.key == key)
            .map(|f| f.name.clone())
            .unwrap_or_default();
        p.files.retain(|f| f.key != key);
        if p.failed.is_none() {
            p.failed = Some(format!("{name} was not accepted: {why}"));
        }
        self.drop_empty();
    }

    /// An upload failed for a reason that trying again may cure (the session ended,
    /// the connection kept failing): the file stays, its message waits with why, and
    /// Retry uploads it again.
    pub fn upload_failed(&mut self, key: &str, why: &str) {
        if let Some(p) = self.message_with(key)
            && p.failed.is_none()
        {
            p.failed = Some(why.to_owned());
        }
    }

    /// The person cancelled file `key`: it leaves its message, and a message left
    /// with nothing goes altogether. Returns the `send` to make now if the files left
    /// are all uploaded and the room is joined.
    pub fn cancel_file(&mut self, key: &str) -> Option<ClientMsg> {
        let p = self.message_with(key)?;
        p.files.retain(|f| f.key != key);
        let client_id = p.client_id.clone();
        self.drop_empty();
        let p = self
            .outbox
            .pending
            .iter()
            .find(|p| p.client_id == client_id)?;
        (p.ready() && p.failed.is_none() && self.live.contains(&p.room)).then(|| p.to_send())
    }

    fn message_with(&mut self, key: &str) -> Option<&mut Pending> {
        self.outbox
            .pending
            .iter_mut()
            .find(|p| p.files.iter().any(|f| f.key == key))
    }

    /// Forgets messages with nothing left to send.
    pub(super) fn drop_empty(&mut self) {
        self.outbox.pending.retain(|p| !p.is_empty());
    }
}

#[cfg(test)]
mod tests;
