//! WebSocket close codes the server uses, with the situations that lead to each.
//!
//! Codes below 4000 are the ones RFC 6455 defines; the client reacts to them the same
//! way any WebSocket client would. Codes 4000–4999 are Confab's own.

/// The server is shutting down or restarting; reconnect with backoff.
pub const GOING_AWAY: u16 = 1001;
/// The peer broke the WebSocket framing rules.
pub const PROTOCOL_ERROR: u16 = 1002;
/// The peer sent a binary frame; Confab speaks JSON text only.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// A text frame was not valid UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// The peer broke a server policy (for example flooding).
pub const POLICY_VIOLATION: u16 = 1008;
/// A message was larger than [`crate::limits::MAX_FRAME_BYTES`].
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The server hit an unexpected condition on this connection.
pub const INTERNAL_ERROR: u16 = 1011;
/// The client did not read its messages fast enough and its outgoing queue filled up.
/// Reconnecting is fine: the client will get the recent history again on join.
pub const SLOW_CONSUMER: u16 = 4000;
/// The client sent no frame (not even a pong) within the idle timeout.
pub const IDLE_TIMEOUT: u16 = 4001;
/// The session this socket was opened with was signed out (on this device or
/// everywhere) or has expired. Do not reconnect: show the sign-in screen.
pub const SIGNED_OUT: u16 = 4002;
/// An administrator disabled the account (`confab-server admin disable`, or the admin
/// page): every session of it is over and signing in is refused until it is enabled
/// again. Do not reconnect: show the sign-in screen, saying why.
pub const ACCOUNT_DISABLED: u16 = 4003;
