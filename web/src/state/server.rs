//! What the server's frames do to the view: the one place a [`ServerMsg`] changes the
//! state (the socket service hands each one to the reducer as `Action::Server`).

use std::rc::Rc;

use confab_shared::{ChatMessage, ErrorCode, PresenceEvent, ServerMsg, limits};

use super::{AuthError, AuthForm, Messages, RoomTool, State, sort_people};

impl State {
    pub(super) fn on_server(&mut self, msg: ServerMsg, now: f64) {
        match msg {
            ServerMsg::Welcome { you, rooms, .. } => {
                if you.guest {
                    self.admin = false;
                }
                self.me = Some(you);
                self.joining_as = None;
                self.checking = false;
                self.auth_busy = None;
                self.auth_error = None;
                self.rooms = rooms;
            }
            ServerMsg::Rooms { rooms } => {
                self.rooms = rooms;
                self.rooms_changed(None);
            }
            ServerMsg::RoomsChanged {
                rooms,
                removed,
                created,
            } => {
                self.rooms.retain(|r| !removed.contains(&r.name));
                for room in rooms {
                    match self.rooms.binary_search_by(|r| r.name.cmp(&room.name)) {
                        Ok(i) => self.rooms[i] = room,
                        Err(i) => self.rooms.insert(i, room),
                    }
                }
                self.rooms_changed(created);
            }
            ServerMsg::Joined {
                room,
                members,
                member_count,
                online,
                history,
                ..
            } => {
                let view = self.view_entry(room.clone());
                view.members = members;
                view.member_count = member_count;
                sort_people(&mut view.members);
                view.online = online.into_iter().collect();
                for msg in history {
                    insert_message(&mut view.messages, msg);
                }
                view.has_older = view.messages.first().is_some_and(|m| m.seq > 1);
                let newest = view.messages.last().map(|m| m.seq);
                self.leaving.remove(&room);
                if let Some(seq) = newest {
                    self.reopen_if_newer(&room, seq);
                }
                let asked_for = self.opening_direct.as_deref();
                let is_asked_for = asked_for.is_some()
                    && self
                        .room_info(&room)
                        .and_then(|r| r.peer.as_ref())
                        .map(|p| p.user.as_str())
                        == asked_for;
                if is_asked_for {
                    self.opening_direct = None;
                    self.switch(room);
                }
            }
            ServerMsg::Replay { room, messages, .. } => {
                let view = self.view_entry(room);
                for msg in messages {
                    insert_message(&mut view.messages, msg);
                }
            }
            ServerMsg::History {
                room,
                messages,
                more,
            } => {
                if let Some(view) = self.view_mut(&room) {
                    for msg in messages {
                        insert_message(&mut view.messages, msg);
                    }
                    view.has_older = more;
                    view.loading_older = false;
                }
            }
            ServerMsg::Ack {
                room,
                client_id,
                id,
                seq,
                ts,
            } => {
                // Show the stored message right away; its broadcast, which follows,
                // is the same id and is dropped as a duplicate.
                // Removed here too, not only by the outbox update that follows, so the
                // message never shows twice in between.
                let Some(at) = self.pending.iter().position(|p| p.client_id == client_id) else {
                    return;
                };
                let pending = self.pending.remove(at);
                let (from, name) = self
                    .me
                    .as_ref()
                    .map(|p| (p.user.clone(), p.name.clone()))
                    .unwrap_or_default();
                let msg = ChatMessage {
                    id,
                    room,
                    seq,
                    from,
                    name,
                    body: pending.body,
                    ts,
                    ..ChatMessage::default()
                };
                if let Some(view) = self.view_mut(&msg.room) {
                    insert_message(&mut view.messages, msg);
                }
            }
            ServerMsg::Left { room } => {
                let ours = self.leaving.remove(&room);
                let news = (!ours && self.joined.contains_key(&room)).then(|| {
                    // Removed by the owner, or the room was deleted.
                    format!("You are no longer in {}.", self.label(&room))
                });
                if self.room_request.as_ref().is_some_and(|r| r.room == room) {
                    self.room_request = None;
                }
                // Dropped first: going back to the default room clears old notices.
                self.drop_room(&room);
                if news.is_some() {
                    self.notice = news;
                }
            }
            ServerMsg::Members { room, mut members } => {
                sort_people(&mut members);
                if let Some(request) = &mut self.room_request
                    && request.room == room
                {
                    let listed = members.iter().any(|p| p.user == request.subject);
                    match request.tool {
                        RoomTool::Invite if listed => request.done = true,
                        RoomTool::Remove if !listed => request.done = true,
                        _ => {}
                    }
                }
                if let Some(view) = self.view_mut(&room) {
                    view.member_count = members.len();
                    view.members = members;
                }
            }
            ServerMsg::Message(msg) => {
                let (room, seq) = (msg.room.clone(), msg.seq);
                if let Some(view) = self.view_mut(&msg.room) {
                    view.typing.retain(|(p, _)| p.user != msg.from);
                    insert_message(&mut view.messages, msg);
                }
                self.reopen_if_newer(&room, seq);
            }
            ServerMsg::Presence { room, who, event } => {
                if let Some(view) = self.view_mut(&room) {
                    if event == PresenceEvent::Joined {
                        view.online.insert(who.user.clone());
                        view.add_member(who);
                    } else {
                        view.online.remove(&who.user);
                        view.typing.retain(|(p, _)| p.user != who.user);
                    }
                }
            }
            ServerMsg::Typing { room, who } => {
                if let Some(view) = self.view_mut(&room) {
                    let until = now as u64 + limits::TYPING_TTL_MS;
                    match view.typing.iter_mut().find(|(p, _)| p.user == who.user) {
                        Some(entry) => *entry = (who, until),
                        None => view.typing.push((who, until)),
                    }
                }
            }
            ServerMsg::Error {
                code,
                message,
                room,
                client_id,
                ..
            } => self.on_error(code, message, room, client_id.is_some()),
            // Edits, deletions and reactions: not shown by this client yet.
            ServerMsg::Changed(_) => {}
            // Read markers: see `reading.rs`, which sees every action.
            ServerMsg::Read { .. } => {}
            // Answered in the socket service, which is all it is for.
            ServerMsg::Pong => {}
        }
    }

    fn on_error(&mut self, code: ErrorCode, message: String, room: Option<String>, send: bool) {
        if self.joining_as.take().is_some() {
            // The guest's hello was refused: back to the form, with why.
            let field = matches!(code, ErrorCode::InvalidName | ErrorCode::NameTaken)
                .then(|| "display_name".to_owned());
            self.checking = false;
            self.auth_busy = None;
            self.auth_error = Some(AuthError {
                form: AuthForm::Guest,
                message,
                field,
            });
            return;
        }
        if code == ErrorCode::UnknownRoom
            && let Some(room) = &room
        {
            // A room we were in vanished (deleted, or the server restarted without it).
            self.drop_room(room);
            self.notice = Some(message);
            return;
        }
        let about_form = !send
            && matches!(
                code,
                ErrorCode::UnknownUser
                    | ErrorCode::Forbidden
                    | ErrorCode::InvalidName
                    | ErrorCode::InvalidRoom
                    | ErrorCode::NotInRoom
                    | ErrorCode::RoomExists
                    | ErrorCode::TooManyRooms
            );
        if about_form
            && let Some(request) = &mut self.room_request
            && room.as_ref().is_none_or(|r| *r == request.room)
        {
            request.error = Some(message);
            return;
        }
        if code == ErrorCode::UnknownUser {
            self.opening_direct = None;
        }
        self.notice = Some(message);
    }
}

/// Inserts in id order, ignoring a message already present (history re-sent on re-join)
/// without copying the list for it.
fn insert_message(messages: &mut Messages, msg: ChatMessage) {
    let at = match messages.last() {
        None => 0,
        Some(last) if last.id < msg.id => messages.len(),
        Some(_) => match messages.binary_search_by_key(&msg.id, |m| m.id) {
            Ok(_) => return,
            Err(pos) => pos,
        },
    };
    Rc::make_mut(messages).insert(at, Rc::new(msg));
}

impl State {
    /// After the room list changed: a rename we asked for is done once it shows, and the
    /// room our own `create_room` made (`created`) is shown (the socket service joins it).
    fn rooms_changed(&mut self, created: Option<String>) {
        if let Some(request) = &mut self.room_request
            && request.tool == RoomTool::Rename
            && self
                .rooms
                .iter()
                .any(|r| r.name == request.room && r.title == request.subject)
        {
            request.done = true;
        }
        if let Some(room) = created {
            self.switch(room);
        }
    }
}
