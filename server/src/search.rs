//! Full-text search of messages (`search` in docs/PROTOCOL.md).
//!
//! Three parts, each where the rest of its kind lives: [`query`] turns what a person
//! typed into a typed query (pure, no I/O: fuzzed and property-tested on its own); the
//! hub (`hub/search.rs`) decides which rooms the person may see and asks a reader thread;
//! the store (`store/sqlite/search.rs`) runs it against an SQLite FTS5 index of message
//! bodies and reads each hit as it is now.

pub mod query;
