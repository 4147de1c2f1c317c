//! Connections and who is behind them.
//!
//! A connection arrives with an [`Identity`] and may do nothing but say hello until it
//! has a name: an account's is its username, a guest's the one it asks for, unique
//! among the guests online and free again once they go. A connection going away takes
//! its person offline in its rooms but not out of them (guests excepted, who belong to
//! a room only while they are there). Signing out closes exactly the sockets opened
//! with that sign-in. The directory of accounts lives here too, since showing a person
//! means knowing whether they are an account or a guest online.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use confab_shared::{
    DisplayName, ErrorCode, GUEST_PREFIX, PROTOCOL_VERSION, Person, ServerMsg, close,
};

use super::{Conn, ConnId, Hub, Identity, Refusal, Sessions};
use crate::send_queue::SendQueue;

/// How long the hub remembers a sign-out for sockets still on their way (see
/// [`Hub::connect`]).
const SIGNED_OUT_MEMORY: Duration = Duration::from_secs(60);

impl Hub {
    /// Number of open connections, identified or not.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// A new connection. It may only say hello until then.
    pub fn connect(&mut self, id: ConnId, queue: SendQueue, identity: Identity) {
        if self.shutting_down {
            queue.close(close::GOING_AWAY, "server shutting down");
            return;
        }
        let mut signed_out = false;
        if let Identity::User {
            username,
            display_name,
            session,
            checked_at,
            ..
        } = &identity
        {
            // Accounts made by `confab-server admin create` while the server runs
            // reach the hub this way.
            self.directory
                .entry(username.clone())
                .or_insert_with(|| display_name.clone());
            // Signed out between the check of its cookie and its arrival here.
            signed_out = self
                .signed_out
                .iter()
                .any(|(user, key, at)| user == username && key.covers(session) && at > checked_at);
        }
        if signed_out {
            queue.close(close::SIGNED_OUT, "signed out");
        }
        self.conns.insert(
            id,
            Conn {
                queue,
                identity,
                person: None,
                rooms: Vec::new(),
                last_typing: HashMap::new(),
                typing_window: (Instant::now(), 0),
                reading: Vec::new(),
                history_reads: 0,
            },
        );
    }

    /// Names the connection and welcomes it with the rooms it may see.
    pub(super) fn hello(&mut self, id: ConnId, name: Option<DisplayName>) -> Result<(), Refusal> {
        let Some(conn) = self.conns.get(&id) else {
            return Ok(());
        };
        let person = match (&conn.identity, name) {
            (
                Identity::User {
                    username,
                    display_name,
                    ..
                },
                _,
            ) => Person {
                user: username.clone(),
                name: display_name.clone(),
                guest: false,
            },
            (Identity::Guest, None) => {
                return Err(Refusal::new(
                    ErrorCode::InvalidName,
                    "a guest says hello with the display name they want",
                ));
            }
            (Identity::Guest, Some(name)) => {
                let username = format!("{GUEST_PREFIX}{}", name.key());
                if self.guests.contains_key(&username) {
                    return Err(Refusal::new(
                        ErrorCode::NameTaken,
                        format!("a guest online is already called {name}"),
                    ));
                }
                self.guests.insert(username.clone(), id);
                Person {
                    user: username,
                    name: name.into_string(),
                    guest: true,
                }
            }
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.person = Some(person.clone());
        }
        self.sessions
            .entry(person.user.clone())
            .or_default()
            .push(id);
        let welcome = ServerMsg::Welcome {
            protocol: PROTOCOL_VERSION,
            epoch: self.epoch.clone(),
            you: person,
            rooms: self.room_list_for(id),
        };
        self.reply(id, &welcome);
        Ok(())
    }

    /// The connection is gone: free its name and tell its rooms.
    pub fn disconnect(&mut self, id: ConnId) {
        self.remove_conn(id);
        self.settle();
    }

    /// Removes a connection everywhere, telling each of its rooms. Membership stays: the
    /// person is offline, not gone.
    pub(super) fn remove_conn(&mut self, id: ConnId) {
        let rooms: Vec<String> = match self.conns.get(&id) {
            Some(conn) => conn.rooms.clone(),
            None => return,
        };
        self.drop_pending_reads(id);
        // A guest belongs to a room only while there (one connection is one guest):
        // out of its members first, so the departure tells the room's new count.
        if let Some(guest) = self
            .conns
            .get(&id)
            .filter(|conn| conn.is_guest())
            .and_then(Conn::username)
            .map(str::to_owned)
        {
            for room in &rooms {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.members.remove(&guest);
                }
            }
        }
        for room in &rooms {
            self.go_offline(id, room);
        }
        let conn = self.conns.remove(&id);
        if let Some(username) = conn.as_ref().and_then(Conn::username)
            && let Some(ids) = self.sessions.get_mut(username)
        {
            ids.retain(|c| *c != id);
            if ids.is_empty() {
                self.sessions.remove(username);
            }
        }
        if let Some(conn) = conn
            && conn.is_guest()
            && let Some(username) = conn.username()
        {
            self.guests.remove(username);
        }
    }

    /// Asks one connection to close, after the frames already queued for it.
    pub fn kick(&mut self, id: ConnId, code: u16, reason: &str) {
        if let Some(conn) = self.conns.get(&id) {
            conn.queue.close(code, reason);
        }
    }

    /// Closes the sockets of `username` opened with the sign-in `session` (all of the
    /// user's sockets when `None`): their cookie is no longer valid.
    pub fn signed_out(&mut self, username: &str, sessions: Sessions, at: Instant) {
        self.end_sessions(username, sessions, at, close::SIGNED_OUT, "signed out");
    }

    /// Closes the sockets of `username` opened with `sessions` with `code` and `reason`,
    /// and remembers the sessions for a while, for sockets checked before `at` that have
    /// not arrived yet.
    pub(super) fn end_sessions(
        &mut self,
        username: &str,
        sessions: Sessions,
        at: Instant,
        code: u16,
        reason: &str,
    ) {
        // A socket checked before `at` reaches the hub within the handshake timeout;
        // a minute covers it with room to spare, and keeps the list short.
        self.signed_out
            .retain(|(_, _, when)| at.saturating_duration_since(*when) < SIGNED_OUT_MEMORY);
        self.signed_out.push((username.to_owned(), sessions, at));
        for s in self.conns.values() {
            if let Identity::User {
                username: user,
                session: key,
                ..
            } = &s.identity
                && user == username
                && sessions.covers(key)
            {
                s.queue.close(code, reason);
            }
        }
    }

    /// Asks every connection to close with 1001 and refuses new ones.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        for conn in self.conns.values() {
            conn.queue.close(close::GOING_AWAY, "server shutting down");
        }
    }

    /// A new account: from now on it can be named, invited and messaged.
    pub fn user_added(&mut self, username: String, display_name: String) {
        self.directory.insert(username, display_name);
    }

    /// Whether an account has this username. Asks the store before saying no: accounts
    /// can be made by the admin command, outside this process.
    pub(super) fn known_user(&mut self, username: &str) -> bool {
        if self.directory.contains_key(username) {
            return true;
        }
        match self.store.person(username) {
            Ok(Some(p)) => {
                self.directory.insert(p.username, p.display_name);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!("cannot read accounts: {e}");
                false
            }
        }
    }

    /// How clients should show the person with this username.
    pub(super) fn person(&self, username: &str) -> Person {
        if let Some(key) = username.strip_prefix(GUEST_PREFIX) {
            // An online guest's name as they typed it; an offline one's as stored.
            let name = self
                .guests
                .get(username)
                .and_then(|id| self.conns.get(id))
                .and_then(|s| s.person.as_ref())
                .map_or_else(|| key.to_owned(), |p| p.name.clone());
            return Person {
                user: username.to_owned(),
                name,
                guest: true,
            };
        }
        Person {
            user: username.to_owned(),
            name: self
                .directory
                .get(username)
                .cloned()
                .unwrap_or_else(|| username.to_owned()),
            guest: false,
        }
    }

    /// The connection's username, or an empty string before hello.
    pub(super) fn username_of(&self, id: ConnId) -> String {
        self.conns
            .get(&id)
            .and_then(Conn::username)
            .map(str::to_owned)
            .unwrap_or_default()
    }
}
