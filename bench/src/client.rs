//! A bench client's setup conversation with the server: connect, say hello, make and
//! join a room. The hot loops of each scenario live with the scenario.

use std::time::Duration;

use anyhow::{Context, bail};
use confab_shared::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::{net::TcpStream, time::timeout};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async_with_config, tungstenite::Message,
};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Upper bound for any one step of the setup.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a chat socket. Nagle is off, as a latency-minded client would have it: the
/// bench measures the server, not the client's TCP coalescing.
pub async fn connect(url: &str) -> anyhow::Result<Ws> {
    let (ws, _) = timeout(STEP_TIMEOUT, connect_async_with_config(url, None, true))
        .await
        .with_context(|| format!("connecting to {url} timed out"))?
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(ws)
}

pub async fn send(ws: &mut Ws, msg: &ClientMsg) -> anyhow::Result<()> {
    ws.send(Message::text(msg.to_json()))
        .await
        .context("cannot send to the server")
}

/// Reads until `pick` accepts a message, skipping the rest. An `error` frame fails.
pub async fn expect<T>(
    ws: &mut Ws,
    what: &str,
    mut pick: impl FnMut(ServerMsg) -> Option<T>,
) -> anyhow::Result<T> {
    let wait = async {
        loop {
            let frame = ws
                .next()
                .await
                .with_context(|| format!("connection closed while waiting for {what}"))?
                .with_context(|| format!("connection failed while waiting for {what}"))?;
            let Message::Text(text) = frame else {
                continue;
            };
            let msg: ServerMsg = serde_json::from_str(text.as_str())
                .with_context(|| format!("the server sent something unreadable: {text}"))?;
            if let ServerMsg::Error { .. } = msg {
                bail!("the server refused while waiting for {what}: {text}");
            }
            if let Some(found) = pick(msg) {
                return Ok(found);
            }
        }
    };
    timeout(STEP_TIMEOUT, wait)
        .await
        .with_context(|| format!("timed out waiting for {what}"))?
}

/// Connects as `name`, creates `room` and joins it: a sender ready to post there.
pub async fn member_of_own_room(url: &str, name: &str, room: &str) -> anyhow::Result<Ws> {
    let mut ws = connect(url).await?;
    send(
        &mut ws,
        &ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: name.into(),
        },
    )
    .await?;
    expect(&mut ws, "welcome", |m| {
        matches!(m, ServerMsg::Welcome { .. }).then_some(())
    })
    .await?;
    send(&mut ws, &ClientMsg::CreateRoom { room: room.into() }).await?;
    send(
        &mut ws,
        &ClientMsg::Join {
            room: room.into(),
            after: None,
        },
    )
    .await?;
    expect(&mut ws, "joined", |m| match m {
        ServerMsg::Joined { room: r, .. } if r == room => Some(()),
        _ => None,
    })
    .await?;
    Ok(ws)
}
