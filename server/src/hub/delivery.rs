//! Getting frames to sessions without ever waiting for one.
//!
//! A message is serialized once and the same bytes go into every recipient's
//! [`Outbox`](crate::outbox::Outbox), so a broadcast costs one encoding however many
//! receive it. Pushing never blocks the hub: a session whose queue is full is only noted
//! as overflowed, and [`Hub::settle`] disconnects it once the operation is over,
//! because removing a session announces its departure, which is itself a broadcast and
//! must not start while another is still iterating.

use std::collections::HashMap;

use confab_shared::{ServerMsg, close};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Hub, Session, SessionId};

impl Hub {
    /// Sends `msg` to one session: an answer, a refusal, its room list.
    pub(super) fn reply(&mut self, id: SessionId, msg: &ServerMsg) {
        deliver(
            &self.sessions,
            &mut self.overflowed,
            std::iter::once(id),
            &encode(msg),
        );
    }

    /// Sends `msg` to everyone live in `room` but session `except`.
    pub(super) fn tell_others(&mut self, room: &str, except: SessionId, msg: &ServerMsg) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let frame = encode(msg);
        let others = r.online.iter().copied().filter(|m| *m != except);
        deliver(&self.sessions, &mut self.overflowed, others, &frame);
    }

    /// Disconnects every session that could not take a frame during the last operation.
    /// Removing one broadcasts its departure, which may overflow another: loop until
    /// nothing is left.
    pub(super) fn settle(&mut self) {
        while let Some(id) = self.overflowed.pop() {
            if let Some(session) = self.sessions.get(&id) {
                tracing::info!(
                    session = id,
                    "disconnecting slow consumer: outgoing queue full"
                );
                session
                    .outbox
                    .close(close::SLOW_CONSUMER, "too slow: outgoing queue full");
                self.remove_session(id);
            }
        }
    }
}

/// Serializes once; every recipient shares the same bytes.
pub(super) fn encode(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(msg.to_json())
}

/// Queues `frame` for each recipient, noting those whose queue is full.
pub(super) fn deliver(
    sessions: &HashMap<SessionId, Session>,
    overflowed: &mut Vec<SessionId>,
    recipients: impl Iterator<Item = SessionId>,
    frame: &Utf8Bytes,
) {
    for id in recipients {
        if let Some(session) = sessions.get(&id)
            && session.outbox.push(frame.clone()).is_err()
        {
            overflowed.push(id);
        }
    }
}
