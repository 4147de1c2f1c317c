//! Several servers, one chat: the edge between this node and the others.
//!
//! Each node's hub stays the single owner of its own connections. What crosses nodes
//! goes through two engines people already run: PostgreSQL holds the truth (every
//! message, with its per-room `seq` assigned in the transaction that stores it), and
//! Redis carries the news (after a commit, the node that made it publishes the entry
//! on the room's channel, and every node delivers it to its own members).
//!
//! Redis is allowed to lose news, and does (a node dies between its commit and its
//! publication; Redis restarts; a subscriber reconnects): a node that receives `seq`
//! n + 2 having delivered n reads the gap from PostgreSQL before delivering, and a
//! periodic look at every room's latest `seq` ([`crate::store::RoomHead`]) finds a gap
//! at the end of a quiet room, and rooms created, changed or deleted elsewhere. While
//! Redis is down that look is how news travels, more often. So nothing is lost and,
//! since a node delivers each `seq` once, nothing is duplicated.
//!
//! - [`wire`]: what nodes publish to each other, and on which channels.
//! - [`bus`]: the task that publishes and subscribes, and reconnects.
//! - [`notice`]: the command line's news for the nodes, when no node is at hand.
//! - The hub's side (ordering by `seq`, gaps, what a remote event changes) is in
//!   `hub/cluster.rs`.

pub mod bus;
pub mod notice;
pub mod wire;

pub use bus::Bus;
pub use wire::{Inbound, NodeId, Published};
