//! Which database a server keeps everything durable in: the embedded SQLite file of
//! one server (the default), or a PostgreSQL database that every node of a cluster
//! shares (`--database-url`, docs/CLUSTER.md). Chosen once at start; every part that
//! stores something (the message writer and readers, accounts, files) opens its own
//! handle from it.

use std::path::{Path, PathBuf};

use super::{Durability, PgPool, PgStore, SqliteStore, Store, StoreError};

#[derive(Clone)]
pub enum Database {
    /// `confab.db` in the data directory, written by this process only.
    Sqlite {
        data_dir: PathBuf,
        durability: Durability,
    },
    /// A PostgreSQL database shared by the nodes of a cluster.
    Postgres(PgPool),
}

impl Database {
    /// The embedded database in `data_dir`.
    pub fn sqlite(data_dir: &Path, durability: Durability) -> Self {
        Self::Sqlite {
            data_dir: data_dir.to_owned(),
            durability,
        }
    }

    /// Connects to PostgreSQL at `url` with a pool of up to `pool_size` connections and
    /// brings its schema up to date (safe when several nodes start at once). Blocking.
    pub fn postgres(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        Ok(Self::Postgres(PgPool::open(url, pool_size)?))
    }

    /// The store the message writer thread owns.
    pub fn writer(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            Self::Sqlite {
                data_dir,
                durability,
            } => Box::new(SqliteStore::open_writer(data_dir, *durability)?),
            Self::Postgres(pool) => Box::new(PgStore::connect(pool.url())?),
        })
    }

    /// A store for one reader thread (reads only).
    pub fn reader(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            Self::Sqlite {
                data_dir,
                durability,
            } => Box::new(SqliteStore::open_reader(data_dir, *durability)?),
            Self::Postgres(pool) => Box::new(PgStore::connect(pool.url())?),
        })
    }

    /// Whether several servers may share this database (a cluster).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Where it is, for messages to people: the data directory, or PostgreSQL's host
    /// and database (never the password).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { data_dir, .. } => data_dir.display().to_string(),
            Self::Postgres(pool) => pool.describe(),
        }
    }
}
