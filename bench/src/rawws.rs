//! A bare WebSocket client for the fan-out scenario's hot loop.
//!
//! In fan-out runs the bench reads a million frames a second or more on its one core.
//! Through tokio-tungstenite each frame costs an allocation and a copy and the bench
//! became the bottleneck it was measuring (100 % CPU at ~900,000 msgs/s). Here frames
//! are parsed in place from one read buffer per socket, with no allocation per frame.
//! It speaks only what the bench needs from a server: the upgrade (keys from tungstenite,
//! so the handshake is checked as a real client checks it), unfragmented text frames in
//! both directions, pings answered, close.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    time::Instant,
};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};

/// Read buffer per socket: many frames per read system call.
const READ_BUFFER: usize = 64 * 1024;
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A frame read from the server, borrowed from the read buffer.
#[derive(Debug)]
pub enum Frame<'a> {
    Text(&'a str),
    /// A close frame, with its code if it had one.
    Close(Option<u16>),
    /// Ping, pong or binary: nothing the bench acts on (pings are answered by the
    /// reader when it owns the writing half).
    Other,
}

/// The reading half.
pub struct Reader {
    half: OwnedReadHalf,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// When the last read returned: the arrival time of every frame it brought. One
    /// clock reading per read rather than per frame, and it leaves out the time spent
    /// parsing the frames ahead of a frame in the same read.
    read_at: Instant,
    /// Set when the reader answers pings itself.
    pong_to: Option<Writer>,
}

/// The writing half: client frames must be masked.
pub struct Writer {
    half: OwnedWriteHalf,
    mask: [u8; 4],
    out: Vec<u8>,
}

/// Opens a TCP connection to `addr` and upgrades it to a WebSocket on `/ws`: a guest's,
/// or with a session cookie (`name=value`) that account's.
pub async fn connect(addr: SocketAddr, cookie: Option<&str>) -> anyhow::Result<(Reader, Writer)> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
    let key = generate_key();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{}\r\n",
        cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"))
    );
    stream
        .write_all(request.as_bytes())
        .await
        .context("cannot send the upgrade request")?;
    let mut buf = vec![0; READ_BUFFER];
    let mut end = 0;
    let head_end = loop {
        let n = stream
            .read(&mut buf[end..])
            .await
            .context("cannot read the upgrade response")?;
        if n == 0 {
            bail!("the server closed the connection during the upgrade");
        }
        end += n;
        if let Some(i) = buf[..end].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if end == buf.len() {
            bail!("upgrade response head too long");
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("upgrade response not text")?;
    if !head.starts_with("HTTP/1.1 101") {
        bail!("upgrade refused: {}", head.lines().next().unwrap_or(""));
    }
    let accept = derive_accept_key(key.as_bytes());
    let accepted = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == accept
        })
    });
    if !accepted {
        bail!("upgrade response without the right Sec-WebSocket-Accept");
    }
    let (read_half, write_half) = stream.into_split();
    let mask = key_bytes(&key);
    Ok((
        Reader {
            half: read_half,
            buf,
            start: head_end,
            end,
            read_at: Instant::now(),
            pong_to: None,
        },
        Writer {
            half: write_half,
            mask,
            out: Vec::with_capacity(4096),
        },
    ))
}

/// Four bytes of the (random) handshake key: a masking key that differs per socket.
fn key_bytes(key: &str) -> [u8; 4] {
    let b = key.as_bytes();
    [b[0], b[1], b[2], b[3]]
}

impl Reader {
    /// Reads server frames from a socket with no upgrade before them (the `floor`
    /// scenario, whose sender writes frames straight away).
    pub fn without_upgrade(half: OwnedReadHalf) -> Reader {
        Reader {
            half,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            read_at: Instant::now(),
            pong_to: None,
        }
    }

    /// Lets the reader answer pings itself (for sockets that otherwise never write).
    pub fn answer_pings(&mut self, writer: Writer) {
        self.pong_to = Some(writer);
    }

    /// The next frame. Cancel-safe between frames: bytes already read stay buffered.
    pub async fn next(&mut self) -> anyhow::Result<Frame<'_>> {
        Ok(self.next_at().await?.1)
    }

    /// The next frame and when the read that brought it returned.
    pub async fn next_at(&mut self) -> anyhow::Result<(Instant, Frame<'_>)> {
        loop {
            if let Some((fin_op, payload_start, payload_end)) = self.parse()? {
                let at = self.read_at;
                self.start = payload_end;
                let op = fin_op & 0x0F;
                if fin_op & 0x80 == 0 {
                    bail!("fragmented frame (opcode {op}): not expected from the server");
                }
                match op {
                    OP_TEXT => {
                        let text = std::str::from_utf8(&self.buf[payload_start..payload_end])
                            .context("text frame that is not UTF-8")?;
                        return Ok((at, Frame::Text(text)));
                    }
                    OP_CLOSE => {
                        let p = &self.buf[payload_start..payload_end];
                        let code = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                        return Ok((at, Frame::Close(code)));
                    }
                    OP_PING => {
                        if let Some(writer) = &mut self.pong_to {
                            let payload = self.buf[payload_start..payload_end].to_vec();
                            writer.frame(OP_PONG, &payload);
                            writer.flush().await?;
                        }
                        return Ok((at, Frame::Other));
                    }
                    _ => return Ok((at, Frame::Other)),
                }
            }
            self.fill().await?;
        }
    }

    /// Header of the frame at `start`, if the whole frame is buffered: (FIN + opcode
    /// byte, payload range).
    fn parse(&self) -> anyhow::Result<Option<(u8, usize, usize)>> {
        let b = &self.buf[self.start..self.end];
        if b.len() < 2 {
            return Ok(None);
        }
        if b[1] & 0x80 != 0 {
            bail!("masked frame from the server");
        }
        let (len, header) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let mut n = [0; 8];
                n.copy_from_slice(&b[2..10]);
                (
                    usize::try_from(u64::from_be_bytes(n)).context("frame too long")?,
                    10,
                )
            }
            126 | 127 => return Ok(None),
            n => (usize::from(n), 2),
        };
        if header + len > self.buf.len() {
            bail!("frame of {len} bytes: more than the bench's buffer");
        }
        if b.len() < header + len {
            return Ok(None);
        }
        let payload_start = self.start + header;
        Ok(Some((b[0], payload_start, payload_start + len)))
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            // Move the partial frame to the front to make room for the rest.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self
            .half
            .read(&mut self.buf[self.end..])
            .await
            .context("connection failed")?;
        if n == 0 {
            bail!("the server ended the connection");
        }
        self.read_at = Instant::now();
        self.end += n;
        Ok(())
    }
}

impl Writer {
    /// Queues a text frame; [`Writer::flush`] sends everything queued in one write.
    pub fn text(&mut self, payload: &str) {
        self.frame(OP_TEXT, payload.as_bytes());
    }

    fn frame(&mut self, op: u8, payload: &[u8]) {
        self.out.push(0x80 | op);
        match payload.len() {
            n if n < 126 => self.out.push(0x80 | n as u8),
            n if n <= usize::from(u16::MAX) => {
                self.out.push(0x80 | 126);
                self.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                self.out.push(0x80 | 127);
                self.out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        self.out.extend_from_slice(&self.mask);
        let mask = self.mask;
        self.out
            .extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    }

    pub async fn flush(&mut self) -> anyhow::Result<()> {
        self.half
            .write_all(&self.out)
            .await
            .context("cannot send")?;
        self.out.clear();
        Ok(())
    }
}

/// Reads text frames until one starts with `prefix`; an `error` frame or a close fails.
pub async fn expect(reader: &mut Reader, what: &str, prefix: &str) -> anyhow::Result<()> {
    loop {
        match reader.next().await? {
            Frame::Text(text) if text.starts_with(prefix) => return Ok(()),
            Frame::Text(text) if text.starts_with(r#"{"type":"error""#) => {
                bail!("the server refused while waiting for {what}: {text}")
            }
            Frame::Close(code) => bail!("closed ({code:?}) while waiting for {what}"),
            _ => {}
        }
    }
}
