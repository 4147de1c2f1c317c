//! Administrators' actions that the hub carries out, because it holds what they change
//! in memory: deleting any room, removing a message from any room (both whatever the
//! administrator's own memberships), and closing a disabled person's sockets. Who may
//! ask was decided before (`http::admin`, or the machine's own `confab-server admin`
//! through `crate::admin::control`); the hub checks only what it alone knows.

use std::time::Instant;

use confab_shared::{DEFAULT_ROOM, close};

use super::{Hub, Sessions, now_ms};
use crate::store::{ChangeRequest, NewChange, Write};

impl Hub {
    /// Deletes a room with everything in it, as its owner could: its people are told it
    /// is gone. Direct conversations too (an administrator may need to); never #general.
    pub(super) fn admin_delete_room(&mut self, room: &str) -> Result<(), String> {
        if room == DEFAULT_ROOM {
            return Err(format!("#{DEFAULT_ROOM} cannot be deleted"));
        }
        if !self.rooms.contains_key(room) {
            return Err(format!("no room is called {room:?}"));
        }
        self.delete_room(room).map_err(|r| r.message)
    }

    /// Makes a message a tombstone for everyone in its room, live, as its author's
    /// deletion does. Whether the message exists is the store's to say, in the
    /// transaction; a message that does not is left as it is.
    pub(super) fn admin_remove_message(
        &mut self,
        room: &str,
        seq: u64,
        by: &str,
    ) -> Result<(), String> {
        let Some(r) = self.rooms.get(room) else {
            return Err(format!("no room is called {room:?}"));
        };
        if seq == 0 || seq > r.last_seq {
            return Err(format!("room {room:?} has no message {seq}"));
        }
        let ts = now_ms();
        self.submit(
            Write::Change(NewChange {
                room: room.to_owned(),
                target: seq,
                by: by.to_owned(),
                // A change's client id is unique per person: this one per instant, room
                // and message.
                client_id: format!("admin-{ts}-{room}-{seq}"),
                ts,
                what: ChangeRequest::Delete { any: true },
            }),
            None,
        )
        .map_err(|r| r.message)
    }

    /// Closes every socket of a disabled account with [`close::ACCOUNT_DISABLED`] (its
    /// sessions were deleted with the disabling); one that was being opened meanwhile is
    /// closed as signed out when it arrives.
    pub(super) fn account_disabled(&mut self, username: &str, at: Instant) {
        self.end_sessions(
            username,
            Sessions::All,
            at,
            close::ACCOUNT_DISABLED,
            "account disabled by an administrator",
        );
    }
}
