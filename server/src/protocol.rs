//! Turns a client's text frame into a validated hub [`Command`], or into the error
//! frame the client gets instead. This is the only place raw client input is trusted
//! to become typed values.

use confab_shared::{
    Body, ClientId, ClientMsg, DisplayName, Emoji, ErrorCode, PROTOCOL_VERSION, RoomName,
    ServerMsg, Username, limits,
};

use crate::{
    hub::{Command, MessageChange},
    search,
};

/// The error frame a frame earns instead of a command. Boxed: it is the cold path, and
/// a `ServerMsg` is large (every message variant holds a whole chat message).
pub type Rejection = Box<ServerMsg>;

fn rejection(code: ErrorCode, message: impl Into<String>) -> Rejection {
    Box::new(ServerMsg::error(code, message))
}

/// Decodes and validates one frame of client text.
pub fn parse(text: &str) -> Result<Command, Rejection> {
    let msg = ClientMsg::decode(text).map_err(|e| rejection(e.code, e.detail))?;
    validate(msg)
}

/// Applies the shared validation rules to a decoded message.
pub fn validate(msg: ClientMsg) -> Result<Command, Rejection> {
    Ok(match msg {
        ClientMsg::Hello { protocol, name } => {
            if protocol != PROTOCOL_VERSION {
                return Err(rejection(
                    ErrorCode::UnsupportedProtocol,
                    format!(
                        "this server speaks protocol {PROTOCOL_VERSION}, not {protocol}: reload the page"
                    ),
                ));
            }
            let name = name
                .map(|name| {
                    DisplayName::parse(&name)
                        .map_err(|e| rejection(ErrorCode::InvalidName, e.to_string()))
                })
                .transpose()?;
            Command::Hello { name }
        }
        ClientMsg::ListRooms => Command::ListRooms,
        ClientMsg::CreateRoom { room, private } => Command::CreateRoom {
            room: room_name(&room)?,
            private,
        },
        ClientMsg::Join { room, after } => Command::Join {
            room: room_name(&room)?,
            after,
        },
        ClientMsg::Leave { room } => Command::Leave(room_name(&room)?),
        ClientMsg::Send {
            room,
            body,
            client_id,
            reply_to,
            files,
        } => {
            let (room, client_id) = change_of(&room, &client_id)?;
            let files = files_of(files, &room, &client_id)?;
            // A message that shares files may say nothing; one that does not must.
            let body = if files.is_empty() || !body.trim().is_empty() {
                Some(body_of(&body, &room, &client_id)?)
            } else {
                None
            };
            Command::Send {
                body,
                room,
                client_id,
                reply_to,
                files,
            }
        }
        ClientMsg::Edit {
            room,
            seq,
            body,
            client_id,
        } => {
            let (room, client_id) = change_of(&room, &client_id)?;
            let body = body_of(&body, &room, &client_id)?;
            Command::Change {
                room,
                seq,
                client_id,
                change: MessageChange::Edit(body),
            }
        }
        ClientMsg::Delete {
            room,
            seq,
            client_id,
        } => {
            let (room, client_id) = change_of(&room, &client_id)?;
            Command::Change {
                room,
                seq,
                client_id,
                change: MessageChange::Delete,
            }
        }
        ClientMsg::React {
            room,
            seq,
            emoji,
            client_id,
        } => reaction(&room, seq, &emoji, &client_id, true)?,
        ClientMsg::Unreact {
            room,
            seq,
            emoji,
            client_id,
        } => reaction(&room, seq, &emoji, &client_id, false)?,
        ClientMsg::MarkRead { room, seq } => Command::MarkRead {
            room: room_name(&room)?,
            seq,
        },
        ClientMsg::Mute { room, muted } => Command::Mute {
            room: room_name(&room)?,
            muted,
        },
        ClientMsg::FetchHistory {
            room,
            before,
            limit,
        } => Command::FetchHistory {
            room: room_name(&room)?,
            before,
            limit: limit.map_or(limits::HISTORY_PAGE, |l| {
                usize::try_from(l)
                    .unwrap_or(usize::MAX)
                    .clamp(1, limits::HISTORY_PAGE)
            }),
        },
        ClientMsg::Typing { room } => Command::Typing(room_name(&room)?),
        ClientMsg::OpenDirect { user } => Command::OpenDirect(username(&user, None)?),
        ClientMsg::Invite { room, user } => {
            let room = room_name(&room)?;
            Command::Invite {
                user: username(&user, Some(&room))?,
                room,
            }
        }
        ClientMsg::Remove { room, user } => {
            let room = room_name(&room)?;
            Command::Remove {
                user: username(&user, Some(&room))?,
                room,
            }
        }
        ClientMsg::RenameRoom { room, title } => Command::RenameRoom {
            room: room_name(&room)?,
            title: room_name(&title)?,
        },
        ClientMsg::DeleteRoom { room } => Command::DeleteRoom(room_name(&room)?),
        ClientMsg::Ping => Command::Ping,
        ClientMsg::FetchAround { room, seq } => Command::FetchAround {
            room: room_name(&room)?,
            seq,
        },
        ClientMsg::Search { query, before } => Command::Search {
            query: search::query::parse(&query)
                .map_err(|e| rejection(ErrorCode::InvalidQuery, e.to_string()))?,
            text: query,
            before,
        },
    })
}

fn reaction(
    room: &str,
    seq: u64,
    emoji: &str,
    client_id: &str,
    add: bool,
) -> Result<Command, Rejection> {
    let (room, client_id) = change_of(room, client_id)?;
    let emoji = Emoji::parse(emoji).map_err(|e| {
        refusal(
            &room,
            ErrorCode::InvalidEmoji,
            e.to_string(),
            Some(&client_id),
        )
    })?;
    Ok(Command::Change {
        room,
        seq,
        client_id,
        change: if add {
            MessageChange::React(emoji)
        } else {
            MessageChange::Unreact(emoji)
        },
    })
}

/// The error frame for a refused request about `room` (and the change `client_id`).
fn refusal(
    room: &RoomName,
    code: ErrorCode,
    message: String,
    client_id: Option<&ClientId>,
) -> Rejection {
    Box::new(ServerMsg::Error {
        code,
        message,
        room: Some(room.to_string()),
        client_id: client_id.map(ToString::to_string),
        retry_after_ms: None,
    })
}

/// The room and client id every message and change names.
fn change_of(room: &str, client_id: &str) -> Result<(RoomName, ClientId), Rejection> {
    let room = room_name(room)?;
    let client_id = ClientId::parse(client_id)
        .map_err(|e| refusal(&room, ErrorCode::InvalidClientId, e.to_string(), None))?;
    Ok((room, client_id))
}

/// The upload ids a `send` shares: at most [`limits::MAX_FILES_PER_MESSAGE`], each
/// shaped like an id the server hands out ([`crate::files::is_upload_id`]), none twice.
/// Whether they are the sender's unshared uploads to the room is the store's to say.
fn files_of(
    files: Vec<String>,
    room: &RoomName,
    client_id: &ClientId,
) -> Result<Vec<String>, Rejection> {
    let refuse = |message: &str| {
        refusal(
            room,
            ErrorCode::UnknownFile,
            message.to_owned(),
            Some(client_id),
        )
    };
    if files.len() > limits::MAX_FILES_PER_MESSAGE {
        return Err(refuse(&format!(
            "a message shares at most {} files",
            limits::MAX_FILES_PER_MESSAGE
        )));
    }
    for (i, id) in files.iter().enumerate() {
        if !crate::files::is_upload_id(id) {
            return Err(refuse("that is not the id of an upload"));
        }
        if files[..i].contains(id) {
            return Err(refuse("the same file is named twice"));
        }
    }
    Ok(files)
}

fn body_of(raw: &str, room: &RoomName, client_id: &ClientId) -> Result<Body, Rejection> {
    Body::parse(raw)
        .map_err(|e| refusal(room, ErrorCode::InvalidBody, e.to_string(), Some(client_id)))
}

fn room_name(raw: &str) -> Result<RoomName, Rejection> {
    RoomName::parse(raw).map_err(|e| rejection(ErrorCode::InvalidRoom, e.to_string()))
}

/// A username that cannot be valid names nobody: answered like an unknown one.
fn username(raw: &str, room: Option<&RoomName>) -> Result<Username, Rejection> {
    Username::parse(raw).map_err(|_| {
        Box::new(ServerMsg::Error {
            code: ErrorCode::UnknownUser,
            message: format!("there is no user {raw:?}"),
            room: room.map(ToString::to_string),
            client_id: None,
            retry_after_ms: None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        match parse(text).map_err(|e| *e) {
            Err(ServerMsg::Error { code, .. }) => code,
            other => panic!("expected an error for {text}, got {other:?}"),
        }
    }

    #[test]
    fn valid_frames_become_commands() {
        assert!(matches!(
            parse(&format!(r#"{{"type":"hello","protocol":{PROTOCOL_VERSION},"name":" Ada "}}"#)),
            Ok(Command::Hello { name: Some(name) }) if name.as_str() == "Ada"
        ));
        assert!(matches!(
            parse(&format!(
                r#"{{"type":"hello","protocol":{PROTOCOL_VERSION}}}"#
            )),
            Ok(Command::Hello { name: None })
        ));
        assert!(matches!(
            parse(r#"{"type":"create_room","room":"plans","private":true}"#),
            Ok(Command::CreateRoom { private: true, .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"invite","room":"_p1","user":"Bob"}"#),
            Ok(Command::Invite { user, .. }) if user.as_str() == "bob"
        ));
        assert!(matches!(
            parse(r#"{"type":"send","room":"general","body":" hi ","client_id":"c1"}"#),
            Ok(Command::Send { room, body: Some(body), client_id, reply_to: None, files })
                if room.as_str() == "general" && body.as_str() == "hi" && client_id.as_str() == "c1"
                    && files.is_empty()
        ));
        assert!(matches!(
            parse(r#"{"type":"send","room":"general","body":" ","client_id":"c1","files":["f_abcdefghijklmnopqrstuv"]}"#),
            Ok(Command::Send { body: None, files, .. }) if files == ["f_abcdefghijklmnopqrstuv"]
        ));
        assert!(matches!(
            parse(r#"{"type":"join","room":"general","after":12}"#),
            Ok(Command::Join {
                after: Some(12),
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"type":"fetch_history","room":"general","before":50,"limit":100000}"#),
            Ok(Command::FetchHistory { before: 50, limit, .. }) if limit == limits::HISTORY_PAGE
        ));
        assert!(matches!(
            parse(r#"{"type":"fetch_around","room":"general","seq":7}"#),
            Ok(Command::FetchAround { seq: 7, .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"search","query":"rust* in:general","before":9}"#),
            Ok(Command::Search { text, query, before: Some(9) })
                if text == "rust* in:general" && query.rooms == ["general"]
        ));
    }

    #[test]
    fn every_rule_has_its_code() {
        assert_eq!(code("nope"), ErrorCode::BadJson);
        assert_eq!(code(r#"{"type":"shout"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"join"}"#), ErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"hello","protocol":1,"name":"ada"}"#),
            ErrorCode::UnsupportedProtocol
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"hello","protocol":{PROTOCOL_VERSION},"name":"  "}}"#
            )),
            ErrorCode::InvalidName
        );
        assert_eq!(
            code(r#"{"type":"join","room":"No Spaces"}"#),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code(r#"{"type":"send","room":"general","body":"   ","client_id":"c1"}"#),
            ErrorCode::InvalidBody
        );
        assert_eq!(
            code(r#"{"type":"send","room":"general","body":"hi","client_id":"no spaces"}"#),
            ErrorCode::InvalidClientId
        );
        assert_eq!(
            code(r#"{"type":"open_direct","user":"no such user!"}"#),
            ErrorCode::UnknownUser
        );
        assert_eq!(
            code(r#"{"type":"rename_room","room":"ops","title":"Not Valid"}"#),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code(r#"{"type":"search","query":" in:general "}"#),
            ErrorCode::InvalidQuery
        );
        let id = "f_abcdefghijklmnopqrstuv";
        for files in [
            format!(r#"["{id}","{id}"]"#),
            r#"["../etc/passwd"]"#.to_owned(),
            r#"["f_"]"#.to_owned(),
            serde_json::to_string(&vec![id; limits::MAX_FILES_PER_MESSAGE + 1]).expect("json"),
        ] {
            assert_eq!(
                code(&format!(
                    r#"{{"type":"send","room":"general","body":"hi","client_id":"c1","files":{files}}}"#
                )),
                ErrorCode::UnknownFile,
                "{files}"
            );
        }
        assert!(matches!(
            parse(r#"{"type":"send","room":"ops","body":"","client_id":"c9"}"#).map_err(|e| *e),
            Err(ServerMsg::Error { room: Some(r), client_id: Some(c), .. }) if r == "ops" && c == "c9"
        ));
    }
}
