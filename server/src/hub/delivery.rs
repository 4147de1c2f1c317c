//! Getting frames to connections without ever waiting for one.
//!
//! A message is serialized once and the same bytes go into every recipient's
//! [`SendQueue`](crate::send_queue::SendQueue), so a broadcast costs one encoding however many
//! receive it. Pushing never blocks the hub: a connection whose queue is full is only noted
//! as overflowed, and [`Hub::settle`] disconnects it once the operation is over,
//! because removing a connection announces its departure, which is itself a broadcast and
//! must not start while another is still iterating.

use std::collections::HashMap;

use confab_shared::{ServerMsg, close};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Conn, ConnId, Hub};

impl Hub {
    /// Sends an encoded frame to one connection.
    pub(super) fn reply_frame(&mut self, id: ConnId, frame: &Utf8Bytes) {
        deliver(
            &self.conns,
            &mut self.overflowed,
            std::iter::once(id),
            frame,
        );
    }

    /// Sends `msg` to one connection: an answer, a refusal, its room list.
    pub(super) fn reply(&mut self, id: ConnId, msg: &ServerMsg) {
        deliver(
            &self.conns,
            &mut self.overflowed,
            std::iter::once(id),
            &encode(msg),
        );
    }

    /// Sends `msg` to everyone live in `room` but connection `except`.
    pub(super) fn tell_others(&mut self, room: &str, except: ConnId, msg: &ServerMsg) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let frame = encode(msg);
        let others = r.online.iter().copied().filter(|m| *m != except);
        deliver(&self.conns, &mut self.overflowed, others, &frame);
    }

    /// Disconnects every connection that could not take a frame during the last operation.
    /// Removing one broadcasts its departure, which may overflow another: loop until
    /// nothing is left.
    pub(super) fn settle(&mut self) {
        while let Some(id) = self.overflowed.pop() {
            if let Some(conn) = self.conns.get(&id) {
                self.settings.metrics.slow_consumer_closes.increment(1);
                tracing::info!(
                    conn_id = id,
                    "disconnecting slow consumer: outgoing queue full"
                );
                conn.queue
                    .close(close::SLOW_CONSUMER, "too slow: outgoing queue full");
                self.remove_conn(id);
            }
        }
    }
}

/// Serializes once; every recipient shares the same bytes.
pub(super) fn encode(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(msg.to_json())
}

/// Serializes `msg`, whose last field is an empty array, with `array` (JSON made
/// elsewhere, see `reads.rs`) in its place; `None` if `msg` does not end that way.
pub(super) fn encode_spliced(msg: &ServerMsg, array: &str) -> Option<Utf8Bytes> {
    let mut json = msg.to_json();
    let len = json.strip_suffix("[]}")?.len();
    json.truncate(len);
    json.push_str(array);
    json.push('}');
    Some(Utf8Bytes::from(json))
}

/// What one [`deliver`] did, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Fanned {
    /// Send queues the frame went into.
    pub recipients: usize,
    /// The most frames any of them held afterwards.
    pub deepest: usize,
}

/// Queues `frame` for each recipient, noting those whose queue is full.
pub(super) fn deliver(
    conns: &HashMap<ConnId, Conn>,
    overflowed: &mut Vec<ConnId>,
    recipients: impl Iterator<Item = ConnId>,
    frame: &Utf8Bytes,
) -> Fanned {
    let mut fanned = Fanned::default();
    for id in recipients {
        if let Some(conn) = conns.get(&id) {
            match conn.queue.push(frame.clone()) {
                Ok(depth) => {
                    fanned.recipients += 1;
                    fanned.deepest = fanned.deepest.max(depth);
                }
                Err(_) => overflowed.push(id),
            }
        }
    }
    fanned
}
