//! News for the cluster from outside any node: `confab-server admin` run on a machine
//! where no node listens on the data directory's control socket (an operator's laptop,
//! a job runner) still has to make the nodes act on what it changed in PostgreSQL —
//! close a disabled person's sockets, drop a deleted room. It publishes on the control
//! channel what a node would have published ([`Published`]), under a node id of its own,
//! and every node acts on it as on a peer's news.
//!
//! Synchronous on purpose: the command line has no runtime, and publishes once.

use std::time::Duration;

use rand_core::{OsRng, RngCore};

use super::Published;

/// How long connecting to Redis and publishing may take before the command gives up.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes `news` through the Redis at `redis_url`; returns how many nodes heard it
/// (Redis's count of subscribers reached).
pub fn tell_nodes(redis_url: &str, news: &Published) -> redis::RedisResult<usize> {
    let client = redis::Client::open(redis_url)?;
    let mut connection = client.get_connection_with_timeout(TIMEOUT)?;
    connection.set_read_timeout(Some(TIMEOUT))?;
    connection.set_write_timeout(Some(TIMEOUT))?;
    redis::cmd("PUBLISH")
        .arg(news.channel())
        .arg(news.encode(OsRng.next_u64()))
        .query(&mut connection)
}
