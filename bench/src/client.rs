//! A bench client's setup conversation with the server: connect, say hello, make and
//! join a room. The hot loops of each scenario live with the scenario.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use anyhow::{Context, bail};
use confab_shared::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    net::{TcpSocket, TcpStream},
    time::timeout,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, client_async, connect_async_with_config, tungstenite::Message,
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

/// Opens a chat socket to `server` from the loopback address `from`. One source address
/// has ~28,000 ephemeral ports; spreading thousands of sockets over 127.0.0.x keeps a
/// big run clear of that limit.
pub async fn connect_from(server: SocketAddr, from: IpAddr) -> anyhow::Result<Ws> {
    let open = async {
        let socket = TcpSocket::new_v4().context("cannot make a socket")?;
        socket
            .bind(SocketAddr::new(from, 0))
            .with_context(|| format!("cannot bind to {from}"))?;
        let stream = socket
            .connect(server)
            .await
            .with_context(|| format!("cannot connect to {server} from {from}"))?;
        stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
        let url = format!("ws://{server}/ws");
        let (ws, _) = client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .context("WebSocket handshake failed")?;
        anyhow::Ok(ws)
    };
    timeout(STEP_TIMEOUT, open)
        .await
        .with_context(|| format!("connecting to {server} timed out"))?
}

/// The `i`-th loopback source address of a run: 127.0.0.1, then .2, … every `per` sockets.
pub fn source_address(i: usize, per: usize) -> IpAddr {
    let host = 1 + (i / per.max(1)) % 254;
    IpAddr::from([127, 0, 0, u8::try_from(host).unwrap_or(1)])
}

/// Says hello as `name` and waits for the welcome.
pub async fn hello(ws: &mut Ws, name: &str) -> anyhow::Result<()> {
    hello_as(ws, name, PROTOCOL_VERSION).await
}

/// Says hello as `name` in protocol version `protocol` (to measure an older server too)
/// and waits for the welcome.
pub async fn hello_as(ws: &mut Ws, name: &str, protocol: u32) -> anyhow::Result<()> {
    send(
        ws,
        &ClientMsg::Hello {
            protocol,
            name: Some(name.into()),
        },
    )
    .await?;
    expect(ws, "welcome", |m| {
        matches!(m, ServerMsg::Welcome { .. }).then_some(())
    })
    .await
}

/// Joins `room` (which must exist) and waits until the client is live in it.
pub async fn join(ws: &mut Ws, room: &str) -> anyhow::Result<()> {
    send(
        ws,
        &ClientMsg::Join {
            room: room.into(),
            after: None,
        },
    )
    .await?;
    expect(ws, "joined", |m| match m {
        ServerMsg::Joined { room: r, .. } if r == room => Some(()),
        _ => None,
    })
    .await
}

/// Creates `rooms` and waits for the answer to the last: then all exist, as rooms are
/// created in the order asked.
pub async fn create_rooms(ws: &mut Ws, rooms: &[String]) -> anyhow::Result<()> {
    let Some(last) = rooms.last() else {
        return Ok(());
    };
    for room in rooms {
        ws.feed(Message::text(
            ClientMsg::CreateRoom {
                room: room.clone(),
                private: false,
            }
            .to_json(),
        ))
        .await
        .context("cannot send to the server")?;
    }
    ws.flush().await.context("cannot send to the server")?;
    expect(ws, "the new rooms", |m| match m {
        ServerMsg::RoomsChanged {
            created: Some(room),
            ..
        } if &room == last => Some(()),
        _ => None,
    })
    .await
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
    pick: impl FnMut(ServerMsg) -> Option<T>,
) -> anyhow::Result<T> {
    match expect_or_error(ws, what, pick).await? {
        Ok(found) => Ok(found),
        Err(text) => bail!("the server refused while waiting for {what}: {text}"),
    }
}

/// Like [`expect`], but an `error` frame is an answer too (`Err` with its text): for
/// requests whose refusal the scenario counts rather than fails on.
pub async fn expect_or_error<T>(
    ws: &mut Ws,
    what: &str,
    mut pick: impl FnMut(ServerMsg) -> Option<T>,
) -> anyhow::Result<Result<T, String>> {
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
                return Ok(Err(text.as_str().to_owned()));
            }
            if let Some(found) = pick(msg) {
                return Ok(Ok(found));
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
    hello(&mut ws, name).await?;
    create_rooms(&mut ws, &[room.to_owned()]).await?;
    join(&mut ws, room).await?;
    Ok(ws)
}
