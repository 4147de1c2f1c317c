//! Any bytes as the text of a client frame, through the same steps the server takes:
//! `ClientMsg::decode`, then `protocol::validate` (and `protocol::parse`, which is both).
//!
//! Besides "never panics", it checks that:
//! - what decodes re-encodes to JSON that decodes to the same message;
//! - a failure has one of the three decode error codes;
//! - `parse` is exactly decode followed by validate;
//! - every refusal is an error frame that a client can decode back;
//! - a validated `fetch_history` asks for 1..=HISTORY_PAGE messages.
#![no_main]

use confab_server::{hub::Command, protocol};
use confab_shared::{ClientMsg, ErrorCode, ServerMsg, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The server reads text frames only, and tungstenite has checked their UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let validated = match ClientMsg::decode(text) {
        Ok(msg) => {
            let json = msg.to_json();
            assert_eq!(ClientMsg::decode(&json).as_ref(), Ok(&msg), "{json}");
            protocol::validate(msg)
        }
        Err(e) => {
            assert!(
                matches!(
                    e.code,
                    ErrorCode::BadJson | ErrorCode::UnknownType | ErrorCode::BadMessage
                ),
                "{e}"
            );
            Err(Box::new(ServerMsg::error(e.code, e.detail)))
        }
    };
    assert_eq!(protocol::parse(text), validated);
    match validated {
        Ok(Command::FetchHistory { limit, .. }) => {
            assert!((1..=limits::HISTORY_PAGE).contains(&limit), "{limit}");
        }
        Ok(_) => {}
        Err(reply) => {
            assert!(matches!(*reply, ServerMsg::Error { .. }), "{reply:?}");
            let back: ServerMsg = serde_json::from_str(&reply.to_json()).expect("error frame");
            assert_eq!(back, *reply);
        }
    }
});
