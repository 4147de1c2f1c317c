//! The connections of one node to PostgreSQL: a pool (`r2d2`) for the short tasks that
//! come from many requests at once (sign-ins, uploads, downloads), and the URL from
//! which the writer and each reader thread open a connection of their own, kept for
//! its prepared statements.

use std::time::Duration;

use postgres::{Config, NoTls};
use r2d2_postgres::PostgresConnectionManager;

use super::{PgStore, StoreError, off_runtime::OffRuntime};

/// How long a task waits for a pooled connection before it fails (and its request with
/// it): PostgreSQL being down must turn into an answer, not a hang.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection, returned to the pool when dropped.
pub type PooledClient = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// Cheap to clone: the clones share one pool, and the last one dropped closes its
/// connections, off the runtime.
#[derive(Clone)]
pub struct PgPool(std::sync::Arc<Shared>);

struct Shared {
    url: String,
    config: Config,
    pool: OffRuntime<r2d2::Pool<PostgresConnectionManager<NoTls>>>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PgPool").field(&self.describe()).finish()
    }
}

impl PgPool {
    /// Migrates the database at `url` (see [`PgStore::open`]), then makes a pool of up
    /// to `size` connections to it. Blocking.
    pub fn open(url: &str, size: u32) -> Result<Self, StoreError> {
        let config: Config = url.parse()?;
        drop(PgStore::open(url)?);
        let pool = r2d2::Pool::builder()
            .max_size(size.max(1))
            .min_idle(Some(0))
            .connection_timeout(CHECKOUT_TIMEOUT)
            // A broken connection (PostgreSQL restarted) is found on checkout and
            // replaced, so the first request after a restart does not fail.
            .test_on_check_out(true)
            .build_unchecked(PostgresConnectionManager::new(config.clone(), NoTls));
        Ok(Self(std::sync::Arc::new(Shared {
            url: url.to_owned(),
            config,
            pool: OffRuntime::new(pool),
        })))
    }

    /// A connection from the pool, waiting at most a few seconds.
    pub fn get(&self) -> Result<PooledClient, StoreError> {
        Ok(self.0.pool.get()?)
    }

    /// The URL the writer and readers connect with.
    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// Host, port and database name, for logs and messages (never the password).
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .0
            .config
            .get_hosts()
            .iter()
            .map(|host| match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = self.0.config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "postgres://{}:{port}/{}",
            hosts.join(","),
            self.0.config.get_dbname().unwrap_or("")
        )
    }
}
