//! The running server's control socket: `admin.sock`, a Unix socket in the data
//! directory, through which `confab-server admin` (another process, on the same
//! machine) asks the server to act on what it holds in memory: close a disabled
//! person's sockets at once, delete a room through the hub.
//!
//! Why a socket, and not the server polling the database for changes: the command line
//! learns at once whether a server is there and what it did (a room deleted behind a
//! running hub's back would leave it delivering to a room the store no longer has); it
//! costs nothing while nobody administers; and it works the same on SQLite and
//! PostgreSQL. Who may use it is who may open a file in the data directory (the socket
//! is made `0600`): the same people who could read or change the database itself, so it
//! needs no other credential. In a cluster each node listens in its own data directory;
//! a node told of a disabled account also tells the others through Redis, like a
//! sign-out everywhere.
//!
//! One JSON [`Request`] line in, one JSON [`Reply`] line out, then the connection ends.

use std::{io, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

/// The socket's file name in the data directory.
pub const SOCKET_FILE: &str = "admin.sock";
/// How long either side waits for the other's line.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A request is a short line; anything longer is not one.
const MAX_REQUEST_BYTES: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The account was disabled (its sessions are deleted): close its sockets.
    Disabled { username: String },
    /// Delete this room through the hub.
    DeleteRoom { room: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

/// Asks the server running on `data_dir`, if one is: `Ok(None)` when none listens
/// there. Blocking.
#[cfg(unix)]
pub fn ask(data_dir: &Path, request: &Request) -> io::Result<Option<Reply>> {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;

    let mut stream = match UnixStream::connect(data_dir.join(SOCKET_FILE)) {
        Ok(stream) => stream,
        // No socket (no data directory, even: a PostgreSQL node elsewhere), or one left
        // by a server that is gone.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut line = serde_json::to_string(request).map_err(io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    serde_json::from_str(&answer)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(not(unix))]
pub fn ask(_data_dir: &Path, _request: &Request) -> io::Result<Option<Reply>> {
    Ok(None)
}

/// Listens on the data directory's control socket until the task is dropped. A socket
/// file left by a server that is gone is replaced; one another server still answers on
/// is left alone (and this server does without).
#[cfg(unix)]
pub fn listen(
    data_dir: &Path,
    hub: crate::hub::HubSender,
) -> io::Result<Option<tokio::task::JoinHandle<()>>> {
    use std::os::unix::fs::PermissionsExt;

    let path = data_dir.join(SOCKET_FILE);
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        tracing::warn!(
            path = %path.display(),
            "another server answers on this control socket: `confab-server admin` will reach that one"
        );
        return Ok(None);
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Some(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let hub = hub.clone();
                    tokio::spawn(async move {
                        if tokio::time::timeout(TIMEOUT, answer(stream, hub))
                            .await
                            .is_err()
                        {
                            tracing::debug!("control socket request timed out");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })))
}

#[cfg(not(unix))]
pub fn listen(
    _data_dir: &Path,
    _hub: crate::hub::HubSender,
) -> io::Result<Option<tokio::task::JoinHandle<()>>> {
    Ok(None)
}

#[cfg(unix)]
async fn answer(stream: tokio::net::UnixStream, hub: crate::hub::HubSender) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    if BufReader::new(read.take(MAX_REQUEST_BYTES))
        .read_line(&mut line)
        .await
        .is_err()
    {
        return;
    }
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => carry_out(request, &hub).await,
        Err(e) => Reply {
            ok: false,
            message: format!("not a request: {e}"),
        },
    };
    if let Ok(mut out) = serde_json::to_string(&reply) {
        out.push('\n');
        let _ = write.write_all(out.as_bytes()).await;
    }
}

async fn carry_out(request: Request, hub: &crate::hub::HubSender) -> Reply {
    use crate::hub::Event;

    match request {
        Request::Disabled { username } => {
            let message = format!("closed {username}'s connections");
            hub.send(Event::Disabled {
                username,
                at: std::time::Instant::now(),
            })
            .await;
            Reply { ok: true, message }
        }
        Request::DeleteRoom { room } => {
            let (reply, answer) = tokio::sync::oneshot::channel();
            hub.send(Event::AdminDeleteRoom {
                room: room.clone(),
                reply,
            })
            .await;
            match answer.await {
                Ok(Ok(())) => Reply {
                    ok: true,
                    message: format!("deleted room {room}"),
                },
                Ok(Err(why)) => Reply {
                    ok: false,
                    message: why,
                },
                Err(_) => Reply {
                    ok: false,
                    message: "the server is stopping".to_owned(),
                },
            }
        }
    }
}
