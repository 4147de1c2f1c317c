//! Messages, from a send to their delivery, and the store writer they go through.
//!
//! A message is acknowledged and delivered only when the writer reports it committed
//! ([`Hub::committed`]), so nobody ever sees a message that could still be lost, and a
//! re-sent one (its client lost our ack) is acknowledged again but delivered once. A
//! write whose loss would lose a message is refused when the writer is busy, so the
//! client retries; the others (membership, room settings) are only logged. Scrolling
//! back and typing indicators are here as well: both are about one room's messages and
//! touch nothing else.

use std::time::{Duration, Instant};

use confab_shared::{Body, ChatMessage, ClientId, ErrorCode, RoomName, ServerMsg, limits};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{
    ConnId, Hub, Refusal, Waiter,
    changes::refused_change,
    delivery::{deliver, encode},
    now_ms,
    reads::{Found, Read, ReadKind},
};
use crate::store::{Appended, NewMessage, Refused, Write, Written, writer::Outcome};

/// How long a client refused for too many pages of history in flight is asked to wait:
/// about one read's time on a busy server.
const HISTORY_RETRY_MS: u64 = 200;

impl Hub {
    /// Hands a message to the writer; its sender hears back once [`Hub::committed`]
    /// reports it.
    pub(super) fn post(
        &mut self,
        id: ConnId,
        room: RoomName,
        body: Option<Body>,
        client_id: ClientId,
        reply_to: Option<u64>,
        files: Vec<String>,
    ) -> Result<(), Refusal> {
        self.settings.metrics.messages_received.increment(1);
        self.check_member(id, &room)
            .map_err(|r| r.for_send(&client_id))?;
        let Some(person) = self.conns.get(&id).and_then(|s| s.person.as_ref()) else {
            return Ok(());
        };
        let body = body.map(Body::into_string).unwrap_or_default();
        let msg = NewMessage {
            room: room.to_string(),
            from: person.user.clone(),
            name: person.name.clone(),
            mentions: self.mentioned(room.as_str(), &body, &person.user),
            body,
            client_id: client_id.to_string(),
            ts: now_ms(),
            reply_to,
            files,
        };
        let waiter = Waiter {
            conn: id,
            client_id: client_id.to_string(),
        };
        self.submit(Write::Append(msg), Some(waiter))
            .map_err(|r| r.for_send(&client_id))?;
        if let Some(conn) = self.conns.get_mut(&id) {
            // The message ends the sender's typing indicator on every client; let the
            // next keystroke announce typing again straight away.
            conn.last_typing.remove(room.as_str());
        }
        Ok(())
    }

    /// The writer committed (or failed) a batch: acknowledge and deliver, in order.
    pub fn committed(&mut self, outcomes: Vec<Outcome<Option<Waiter>>>) {
        for Outcome { tag, write, result } in outcomes {
            match (result, tag) {
                (Ok(Written::Appended(Appended::Stored(msg))), waiter) => {
                    self.settings.metrics.messages_stored.increment(1);
                    self.ack(waiter, &msg);
                    self.deliver_live(msg);
                }
                (Ok(Written::Appended(Appended::Duplicate(msg))), waiter) => {
                    // Stored before (the client re-sent after losing our ack): confirm
                    // it again, deliver nothing twice.
                    self.ack(waiter, &msg);
                }
                (Ok(Written::Appended(Appended::Refused(refused))), waiter) => {
                    if let (Some(waiter), Write::Append(m)) = (waiter, &write) {
                        let (code, message) = refused_change(refused);
                        let what = match refused {
                            Refused::UnknownFile => "cannot share",
                            _ => "cannot reply",
                        };
                        self.reply(
                            waiter.conn,
                            &ServerMsg::Error {
                                code,
                                message: format!("{what}: {message}"),
                                room: Some(m.room.clone()),
                                client_id: Some(waiter.client_id),
                                retry_after_ms: None,
                            },
                        );
                    }
                }
                (Ok(Written::Changed(outcome)), waiter) => {
                    if let Write::Change(c) = &write {
                        self.change_committed(waiter, &c.room, outcome);
                    }
                }
                (Ok(Written::Done), None) => {
                    self.publish_committed(&write);
                    if let Write::CreateRoom { room, .. } = &write {
                        self.created_here(room);
                        self.room_stored(room, Ok(()));
                    } else if !self.personal_committed(&write) {
                        self.access_committed(&write, Ok(()));
                    }
                }
                (Ok(Written::Done), Some(_)) => {}
                (Err(e), Some(waiter)) => {
                    let room = match &write {
                        Write::Append(m) => Some(m.room.clone()),
                        Write::Change(c) => Some(c.room.clone()),
                        _ => None,
                    };
                    self.reply(
                        waiter.conn,
                        &ServerMsg::Error {
                            code: ErrorCode::Unavailable,
                            message: format!("the message could not be stored ({e}); retry"),
                            room,
                            client_id: Some(waiter.client_id),
                            retry_after_ms: None,
                        },
                    );
                }
                (Err(e), None) => {
                    let e = e.to_string();
                    let created = match &write {
                        Write::CreateRoom { room, .. } => self.room_stored(room, Err(&e)),
                        _ => false,
                    };
                    if !created && !self.access_committed(&write, Err(&e)) {
                        tracing::error!(write = %write.summary(), "store write failed: {e}");
                    }
                }
            }
        }
        self.settle();
    }

    /// Confirms a stored message to the connection that sent it.
    fn ack(&mut self, waiter: Option<Waiter>, msg: &ChatMessage) {
        if let Some(Waiter { conn, client_id }) = waiter {
            self.reply(
                conn,
                &ServerMsg::Ack {
                    room: msg.room.clone(),
                    client_id,
                    id: msg.id,
                    seq: msg.seq,
                    ts: msg.ts,
                },
            );
        }
    }

    fn deliver_live(&mut self, msg: ChatMessage) {
        let frame = ServerMsg::Message(msg);
        if let ServerMsg::Message(m) = &frame {
            self.deliver_log_entry(&m.room, m.seq, &frame);
        }
    }

    /// Delivers the committed log entry `seq` of `room` (a message, a change) that this
    /// node's writer stored. On a node of a cluster it is published, and delivered in
    /// `seq` order with the other nodes' entries (see `cluster.rs`).
    pub(super) fn deliver_log_entry(&mut self, room: &str, seq: u64, msg: &ServerMsg) {
        let frame = encode(msg);
        if self.cluster.is_some() {
            self.local_log_entry(room, seq, frame);
        } else {
            self.deliver_log_frame(room, seq, &frame);
        }
    }

    /// Delivers log entry `seq` of `room` to the room's live connections, and keeps it
    /// for those whose join's read is in flight (they get it after their read's answer:
    /// see `reads.rs`).
    pub(super) fn deliver_log_frame(&mut self, room: &str, seq: u64, frame: &Utf8Bytes) {
        // A room deleted while its last entries were being committed: nobody is left to
        // deliver them to, and they are deleted with it.
        let Some(room) = self.rooms.get_mut(room) else {
            return;
        };
        room.last_seq = room.last_seq.max(seq);
        // Counted once per fan-out, with its size: never per recipient.
        let fanned = if room.reading.is_empty() {
            let online = room.online.iter().copied();
            deliver(&self.conns, &mut self.overflowed, online, frame)
        } else {
            let reading = &room.reading;
            let online = room
                .online
                .iter()
                .copied()
                .filter(|c| !reading.contains_key(c));
            let fanned = deliver(&self.conns, &mut self.overflowed, online, frame);
            room.keep_for_readers(seq, frame, self.settings.read_buffer, &mut self.overflowed);
            fanned
        };
        self.settings
            .metrics
            .fanned_out(fanned.recipients, fanned.deepest);
    }

    /// Queues a write for the store writer without waiting for it. A full queue, or a
    /// stopped hub, refuses it as unavailable, for the client to retry.
    pub(super) fn submit(&self, write: Write, waiter: Option<Waiter>) -> Result<(), Refusal> {
        let busy = || {
            Refusal::new(
                ErrorCode::Unavailable,
                "the server cannot store this right now; retry shortly",
            )
        };
        self.note_local_write(&write);
        self.writer
            .as_ref()
            .ok_or_else(busy)?
            .try_submit(write, waiter)
            .map_err(|_| busy())
    }

    /// A write whose loss would not lose a message (membership, room settings): logged
    /// rather than refused when the writer is saturated.
    pub(super) fn submit_quietly(&self, write: Write) {
        if self.submit(write.clone(), None).is_err() {
            tracing::warn!(write = %write.summary(), "not stored: the store writer is busy");
        }
    }

    /// Stops the hub's use of storage: pending writes are flushed by the writer, which
    /// then ends.
    pub fn stop(&mut self) {
        self.writer = None;
    }

    /// A page of the room's messages before `before`, for scrolling back, read off the
    /// hub's thread. It stops at what was delivered live, so it never shows a message
    /// before its commit report reaches the hub.
    pub(super) fn fetch_history(
        &mut self,
        id: ConnId,
        room: RoomName,
        before: u64,
        limit: usize,
    ) -> Result<(), Refusal> {
        self.read_page(id, &room, ReadKind::Before { before, limit })
    }

    /// The messages around `seq`, for opening a room far back (a search result), read
    /// like a page of history.
    pub(super) fn fetch_around(
        &mut self,
        id: ConnId,
        room: RoomName,
        seq: u64,
    ) -> Result<(), Refusal> {
        self.read_page(id, &room, ReadKind::Around { seq })
    }

    /// Asks for a page of a joined room that is no join (history, around), within the
    /// connection's reads in flight.
    fn read_page(&mut self, id: ConnId, room: &RoomName, kind: ReadKind) -> Result<(), Refusal> {
        self.check_member(id, room)?;
        self.check_reads_in_flight(id).map_err(|r| Refusal {
            room: Some(room.to_string()),
            ..r
        })?;
        let until = self.rooms[room.as_str()].last_seq;
        self.request_read(id, room, until, kind)?;
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.history_reads += 1;
        }
        Ok(())
    }

    /// Refuses one more read for the connection when it has its fill in flight
    /// (`fetch_history`, `fetch_around` and `search` count alike): one client must not
    /// fill the read queue that every join waits in.
    pub(super) fn check_reads_in_flight(&self, id: ConnId) -> Result<(), Refusal> {
        let max = self.settings.history_reads_per_connection;
        if self.conns.get(&id).is_some_and(|c| c.history_reads >= max) {
            return Err(Refusal {
                retry_after_ms: Some(HISTORY_RETRY_MS),
                ..Refusal::new(
                    ErrorCode::RateLimited,
                    format!(
                        "at most {max} pages of history or searches at a time: wait for the answers"
                    ),
                )
            });
        }
        Ok(())
    }

    /// The answer to [`Hub::fetch_history`] or [`Hub::fetch_around`], if the connection
    /// is still in the room.
    pub(super) fn finish_history(&mut self, read: Read, result: Result<Found, String>) {
        let Some(conn) = self.conns.get_mut(&read.conn) else {
            return;
        };
        conn.history_reads = conn.history_reads.saturating_sub(1);
        if let Err(refusal) = self.check_member(read.conn, &read.room) {
            self.reply(read.conn, &refusal.into_msg());
            return;
        }
        let found = match result {
            Ok(found) => found,
            Err(e) => {
                let refusal = history_unavailable(&read.room, &e);
                self.reply(read.conn, &refusal.into_msg());
                return;
            }
        };
        let messages = found.page.messages;
        let reply = match read.kind {
            ReadKind::Around { seq } => ServerMsg::Around {
                room: read.room.into_string(),
                seq,
                messages,
                older: found.older,
                newer: found.newer,
            },
            _ => ServerMsg::History {
                more: messages.first().is_some_and(|m| m.seq > 1),
                room: read.room.into_string(),
                messages,
            },
        };
        self.reply(read.conn, &reply);
    }

    /// Forwards a typing indicator to the rest of the room, within two throttles: one
    /// per room, one per connection over all its rooms.
    pub(super) fn typing(&mut self, id: ConnId, room: RoomName) -> Result<(), Refusal> {
        self.check_member(id, &room)?;
        let now = Instant::now();
        // Clients throttle themselves; allow some slack for timer jitter, drop the rest.
        let min_gap = Duration::from_millis(limits::TYPING_THROTTLE_MS * 3 / 4);
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        if matches!(conn.last_typing.get(room.as_str()), Some(last) if now.duration_since(*last) < min_gap)
        {
            return Ok(());
        }
        let (window_start, forwarded) = &mut conn.typing_window;
        if now.duration_since(*window_start) >= Duration::from_secs(1) {
            *window_start = now;
            *forwarded = 0;
        }
        if *forwarded >= self.settings.max_typing_per_sec {
            return Ok(());
        }
        *forwarded += 1;
        conn.last_typing.insert(room.to_string(), now);
        let Some(who) = conn.person.clone() else {
            return Ok(());
        };
        self.publish(crate::cluster::Published::Typing {
            room: room.to_string(),
            who: who.clone(),
        });
        let typing = ServerMsg::Typing {
            room: room.to_string(),
            who,
        };
        self.tell_others(room.as_str(), id, &typing);
        Ok(())
    }
}

/// A room's history could not be read: logged here, retried by the client.
pub(super) fn history_unavailable(room: &RoomName, e: &str) -> Refusal {
    tracing::error!("reading history of #{room}: {e}");
    Refusal::about(
        room,
        ErrorCode::Unavailable,
        "history is unavailable right now; retry".to_owned(),
    )
}
