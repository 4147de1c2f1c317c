//! Accounts for the scenarios that need them. Bench clients are guests (no password
//! hashing in a setup that measures sockets and messages), but guests may not edit
//! messages: the fan-out scenario's edit/reaction mix signs its publishers up, once, before
//! anything is measured.
//!
//! One `POST /api/signup` over a plain TCP connection: the bench has no HTTP client, and
//! this is all it needs of one (one request, `Connection: close`, the session cookie out
//! of the answer).

use std::net::SocketAddr;

use anyhow::{Context, bail};
use confab_shared::api::{PREFIX, SESSION_COOKIE, SignUp};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Largest answer read: a `Me` and its headers are a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Creates the account `username` and returns its session cookie (`name=value`, ready
/// for a `Cookie` header). The server must allow sign-ups from one address faster than it
/// does for people (`bench/src/server.rs` lifts that limit).
pub async fn sign_up(addr: SocketAddr, username: &str) -> anyhow::Result<String> {
    let body = serde_json::to_string(&SignUp {
        username: username.to_owned(),
        // Not one of the common passwords the server refuses.
        password: format!("{username} benchmark publisher, not a person"),
        display_name: None,
        invite: None,
    })
    .context("cannot encode the sign-up")?;
    let request = format!(
        "POST {PREFIX}/signup HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream
        .write_all(request.as_bytes())
        .await
        .context("cannot send the sign-up")?;
    let mut response = Vec::new();
    (&mut stream)
        .take(MAX_RESPONSE_BYTES as u64)
        .read_to_end(&mut response)
        .await
        .context("cannot read the sign-up's answer")?;
    let response = String::from_utf8_lossy(&response);
    session_cookie(&response).with_context(|| {
        format!(
            "signing up {username} failed: {}",
            response.lines().next().unwrap_or("no answer")
        )
    })
}

/// The session cookie a successful sign-up's answer sets.
fn session_cookie(response: &str) -> anyhow::Result<String> {
    let (head, _) = response
        .split_once("\r\n\r\n")
        .context("the answer has no end of head")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 201 ") {
        bail!("{status}");
    }
    lines
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, value)| value.trim().split(';').next())
        .find(|pair| {
            pair.split_once('=')
                .is_some_and(|(name, value)| name == SESSION_COOKIE && !value.is_empty())
        })
        .map(str::to_owned)
        .context("no session cookie in the answer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_session_cookie_and_not_the_device_cookie() {
        let answer = "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                      set-cookie: confab_device=fan-0.abc.def; HttpOnly; SameSite=Strict; Path=/\r\n\
                      set-cookie: confab_session=t0k3n; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000\r\n\
                      content-length: 2\r\n\r\n{}";
        assert_eq!(
            session_cookie(answer).expect("cookie"),
            "confab_session=t0k3n"
        );
    }

    #[test]
    fn a_refusal_or_an_answer_without_a_session_is_an_error() {
        let taken = "HTTP/1.1 409 Conflict\r\ncontent-length: 2\r\n\r\n{}";
        assert!(session_cookie(taken).is_err());
        let cleared = "HTTP/1.1 201 Created\r\nset-cookie: confab_session=; Max-Age=0\r\n\r\n";
        assert!(session_cookie(cleared).is_err());
        assert!(session_cookie("HTTP/1.1 201 Created\r\n").is_err());
    }
}
