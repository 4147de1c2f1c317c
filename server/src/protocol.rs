//! Turns a client's text frame into a validated hub [`Command`], or into the error
//! frame the client gets instead. This is the only place raw client input is trusted
//! to become typed values.

use confab_shared::{
    Body, ClientMsg, DisplayName, ErrorCode, PROTOCOL_VERSION, RoomName, ServerMsg,
};

use crate::hub::Command;

/// Decodes and validates one frame of client text.
pub fn parse(text: &str) -> Result<Command, ServerMsg> {
    let msg = ClientMsg::decode(text).map_err(|e| ServerMsg::error(e.code, e.detail))?;
    validate(msg)
}

/// Applies the shared validation rules to a decoded message.
pub fn validate(msg: ClientMsg) -> Result<Command, ServerMsg> {
    Ok(match msg {
        ClientMsg::Hello { protocol, name } => {
            if protocol != PROTOCOL_VERSION {
                return Err(ServerMsg::error(
                    ErrorCode::UnsupportedProtocol,
                    format!(
                        "this server speaks protocol {PROTOCOL_VERSION}, not {protocol}: reload the page"
                    ),
                ));
            }
            let name = DisplayName::parse(&name)
                .map_err(|e| ServerMsg::error(ErrorCode::InvalidName, e.to_string()))?;
            Command::Hello { name }
        }
        ClientMsg::ListRooms => Command::ListRooms,
        ClientMsg::CreateRoom { room } => Command::CreateRoom(room_name(&room)?),
        ClientMsg::Join { room } => Command::Join(room_name(&room)?),
        ClientMsg::Leave { room } => Command::Leave(room_name(&room)?),
        ClientMsg::Send { room, body } => {
            let room = room_name(&room)?;
            let body = Body::parse(&body).map_err(|e| ServerMsg::Error {
                code: ErrorCode::InvalidBody,
                message: e.to_string(),
                room: Some(room.to_string()),
            })?;
            Command::Send { room, body }
        }
        ClientMsg::Typing { room } => Command::Typing(room_name(&room)?),
    })
}

fn room_name(raw: &str) -> Result<RoomName, ServerMsg> {
    RoomName::parse(raw).map_err(|e| ServerMsg::error(ErrorCode::InvalidRoom, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        match parse(text) {
            Err(ServerMsg::Error { code, .. }) => code,
            other => panic!("expected an error for {text}, got {other:?}"),
        }
    }

    #[test]
    fn valid_frames_become_commands() {
        assert!(matches!(
            parse(r#"{"type":"hello","protocol":1,"name":" Ada "}"#),
            Ok(Command::Hello { name }) if name.as_str() == "Ada"
        ));
        assert!(matches!(
            parse(r#"{"type":"send","room":"general","body":" hi "}"#),
            Ok(Command::Send { room, body }) if room.as_str() == "general" && body.as_str() == "hi"
        ));
    }

    #[test]
    fn every_rule_has_its_code() {
        assert_eq!(code("nope"), ErrorCode::BadJson);
        assert_eq!(code(r#"{"type":"shout"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"join"}"#), ErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"hello","protocol":2,"name":"ada"}"#),
            ErrorCode::UnsupportedProtocol
        );
        assert_eq!(
            code(r#"{"type":"hello","protocol":1,"name":"  "}"#),
            ErrorCode::InvalidName
        );
        assert_eq!(
            code(r#"{"type":"join","room":"No Spaces"}"#),
            ErrorCode::InvalidRoom
        );
        assert_eq!(
            code(r#"{"type":"send","room":"general","body":"   "}"#),
            ErrorCode::InvalidBody
        );
        assert!(matches!(
            parse(r#"{"type":"send","room":"ops","body":""}"#),
            Err(ServerMsg::Error { room: Some(r), .. }) if r == "ops"
        ));
    }
}
