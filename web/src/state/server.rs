//! What the server's frames do to the view: the one place a [`ServerMsg`] changes the
//! state (the socket service hands each one to the reducer as `Action::Server`).

use std::rc::Rc;

use confab_shared::{Change, ChatMessage, ErrorCode, PresenceEvent, Quote, ServerMsg, limits};

use super::{AuthError, AuthForm, RoomTool, State, retried_change, sort_people};

impl State {
    pub(super) fn on_server(&mut self, msg: ServerMsg, now: f64) {
        match msg {
            ServerMsg::Welcome {
                you, rooms, epoch, ..
            } => {
                if self.epoch.as_ref().is_some_and(|seen| *seen != epoch) {
                    // Another store (the server's data was replaced): what we hold is
                    // numbered in another history. The joins that follow start afresh.
                    for view in self.joined.values_mut() {
                        *view = Rc::default();
                    }
                    self.jump = None;
                }
                self.epoch = Some(epoch);
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
                view.add_resumed(history);
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
                self.view_entry(room).add_resumed(messages);
            }
            ServerMsg::History {
                room,
                messages,
                more,
            } => {
                if let Some(view) = self.view_mut(&room) {
                    view.add_older(messages);
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
                let Some(view) = self.view_mut(&room) else {
                    return;
                };
                if let Some(change) = pending.change {
                    // Likewise a change: shown now, its broadcast applies nothing new.
                    view.add_own_change(Change {
                        room,
                        seq,
                        target: change.target(),
                        by: from,
                        ts,
                        change: change.kind(),
                    });
                    return;
                }
                let reply_to = pending
                    .reply_to
                    .and_then(|target| view.message(target))
                    .map(quote_of);
                let files = pending
                    .files
                    .into_iter()
                    .filter_map(|f| f.uploaded)
                    .collect();
                view.add_live(ChatMessage {
                    id,
                    room,
                    seq,
                    from,
                    name,
                    body: pending.body,
                    ts,
                    reply_to,
                    files,
                    ..ChatMessage::default()
                });
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
                    view.add_live(msg);
                }
                self.reopen_if_newer(&room, seq);
            }
            ServerMsg::Changed(change) => {
                if let Some(view) = self.view_mut(&change.room) {
                    view.add_change(change);
                }
            }
            // Read markers are not this module's business yet.
            ServerMsg::Read { .. } => {}
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
            } => {
                let change = client_id.as_ref().and_then(|id| {
                    let pending = self.pending.iter().find(|p| p.client_id == *id)?;
                    pending.change.as_ref()
                });
                let message = match change {
                    // Waits in the outbox and goes again (see `resume`).
                    Some(_) if retried_change(code) => format!("{message} (trying again)"),
                    Some(change) => format!("Could not {}: {message}", change.verb()),
                    None => message,
                };
                self.on_error(code, message, room, client_id.is_some());
            }
            // Answered in the socket service, which is all it is for.
            ServerMsg::Pong => {}
            // PLACEHOLDER (issue 17, replaced before it lands): the client asks for
            // neither yet.
            ServerMsg::Around { .. } | ServerMsg::SearchResults { .. } => {}
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

/// What a reply shows of the message it answers, made from our copy of it until the
/// server's (with its own [`Quote`]) arrives.
pub fn quote_of(m: &ChatMessage) -> Quote {
    let first_line = m.body.lines().next().unwrap_or_default();
    Quote {
        seq: m.seq,
        from: m.from.clone(),
        name: m.name.clone(),
        excerpt: first_line.chars().take(limits::QUOTE_CHARS).collect(),
        deleted: m.deleted,
    }
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
