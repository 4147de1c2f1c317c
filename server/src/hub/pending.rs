//! Access changes take effect only once they are stored.
//!
//! Removing a member, deleting a room, inviting and renaming decide who may read what.
//! Applying one in memory while its write could still be dropped (a busy writer) or fail
//! (a full disk) would undo it at the next restart: a removed member back in the room.
//! So such a change goes to the writer on its lane that is never refused for being full
//! ([`WriterSender::submit_access`](crate::store::writer::WriterSender::submit_access);
//! the per-person rate limit on room changes bounds it), waits here in submission order,
//! and is applied, and answered, when the writer reports its write committed
//! ([`Hub::access_committed`]). A failed write is reported to the requester and changes
//! nothing. The writer reports in submission order, so the oldest waiting change is the
//! one a report can be about.

use std::collections::VecDeque;

use confab_shared::{ErrorCode, ServerMsg};

use super::{ConnId, Hub, Refusal};
use crate::store::Write;

/// An access change waiting for its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AccessChange {
    Remove { room: String, user: String },
    Delete { room: String },
    Invite { room: String, user: String },
    Rename { room: String, title: String },
}

impl AccessChange {
    fn write(&self) -> Write {
        match self.clone() {
            AccessChange::Remove { room, user } => Write::RemoveMember { room, name: user },
            AccessChange::Delete { room } => Write::DeleteRoom { room },
            AccessChange::Invite { room, user } => Write::AddMember { room, name: user },
            AccessChange::Rename { room, title } => Write::RenameRoom { room, title },
        }
    }

    fn room(&self) -> &str {
        match self {
            AccessChange::Remove { room, .. }
            | AccessChange::Delete { room }
            | AccessChange::Invite { room, .. }
            | AccessChange::Rename { room, .. } => room,
        }
    }
}

/// Access changes submitted and not yet reported, oldest first.
#[derive(Debug, Default)]
pub(super) struct PendingAccess(VecDeque<(ConnId, AccessChange, Write)>);

impl Hub {
    /// Hands an access change to the writer; it is applied when committed. Refused as
    /// `unavailable` only when the writer has stopped.
    pub(super) fn submit_access(
        &mut self,
        requester: ConnId,
        change: AccessChange,
    ) -> Result<(), Refusal> {
        let write = change.write();
        self.note_local_write(&write);
        let stopped = || {
            Refusal::new(
                ErrorCode::Unavailable,
                "the server cannot store this right now; retry shortly",
            )
        };
        self.writer
            .as_ref()
            .ok_or_else(stopped)?
            .submit_access(write.clone(), None)
            .map_err(|_| stopped())?;
        self.pending_access.0.push_back((requester, change, write));
        Ok(())
    }

    /// A write without a waiter was committed (`Ok`) or failed: if it is the oldest
    /// waiting access change, apply it or tell its requester. Returns whether it was one.
    pub(super) fn access_committed(&mut self, write: &Write, result: Result<(), &str>) -> bool {
        if self.pending_access.0.front().map(|(_, _, w)| w) != Some(write) {
            return false;
        }
        let Some((requester, change, _)) = self.pending_access.0.pop_front() else {
            return false;
        };
        match result {
            Ok(()) => self.apply_access(requester, change),
            Err(e) => {
                tracing::error!(write = %write.summary(), "access change not stored: {e}");
                let msg = ServerMsg::Error {
                    code: ErrorCode::Unavailable,
                    message: format!(
                        "the change could not be stored ({e}); nothing changed, retry"
                    ),
                    room: Some(change.room().to_owned()),
                    client_id: None,
                    retry_after_ms: None,
                };
                self.reply(requester, &msg);
            }
        }
        true
    }

    /// Makes a committed access change take effect, and tells those concerned.
    fn apply_access(&mut self, requester: ConnId, change: AccessChange) {
        match change {
            AccessChange::Remove { room, user } => self.membership_ended(&room, &user),
            AccessChange::Delete { room } => {
                self.room_deleted(&room);
                self.tell_requester(requester, &room, false);
            }
            AccessChange::Invite { room, user } => {
                let Some(r) = self.rooms.get_mut(&room) else {
                    return;
                };
                if r.members.insert(user.clone()) {
                    self.room_changed_for(&room, [user]);
                }
                // Also the inviter's confirmation when the invitee was a member already.
                self.send_members(&room);
            }
            AccessChange::Rename { room, title } => {
                let Some(r) = self.rooms.get_mut(&room) else {
                    return;
                };
                r.title = title;
                self.room_changed(&room);
                self.tell_requester(requester, &room, false);
            }
        }
    }
}
