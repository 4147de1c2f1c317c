//! Full-text search of messages (`search` in docs/PROTOCOL.md).
//!
//! Three parts, each where the rest of its kind lives: [`query`] turns what a person
//! typed into a typed query (pure, no I/O: fuzzed and property-tested on its own); the
//! hub (`hub/search.rs`) decides which rooms the person may see and asks a reader thread;
//! the store runs it against its index of message bodies (`store/sqlite/search.rs`: an
//! SQLite FTS5 index; `store/postgres/search.rs`: a PostgreSQL `tsvector` column and its
//! GIN index), each rendering the typed terms in its own syntax, and reads each hit as
//! it is now. [`marks`] is how both turn their highlighting into byte ranges.

pub mod marks;
pub mod query;
