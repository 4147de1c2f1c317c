//! One test body, run on both databases: [`on_both_stores!`] makes a `#[test]` of each
//! body once on SQLite and once on a real PostgreSQL (modules `on_sqlite` and
//! `on_postgres`), so a store cannot behave one way on a single server and another in a
//! cluster (issue 18). What a body is given differs between test files (the message
//! store, the accounts' site, a files node), so a file may name its own way of opening
//! it on each database; the message store is the default.
//!
//! Plain `#[test]`s: the synchronous `postgres` client must not run inside a Tokio
//! runtime.

use confab_server::store::{Durability, PgStore, SqliteStore, Store};

use super::services::Postgres;

/// Runs `test` on a message store in a temporary SQLite data directory.
pub fn store_on_sqlite(test: impl FnOnce(&mut dyn Store)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = SqliteStore::open(dir.path(), Durability::Process).expect("open SQLite");
    test(&mut store);
}

/// Runs `test` on a message store in a throwaway PostgreSQL.
pub fn store_on_postgres(test: impl FnOnce(&mut dyn Store)) {
    let pg = Postgres::start().expect("start PostgreSQL");
    let mut store = PgStore::open(&pg.url()).expect("open PostgreSQL");
    test(&mut store);
}

/// `on_both_stores!(body, …)` runs each body (a function of the test file taking
/// `&mut dyn Store`) on both message stores; `on_both_stores!(sqlite: run_a, postgres:
/// run_b; body, …)` runs each through the file's own functions `run_a(body)` and
/// `run_b(body)`, which open what the bodies take.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    (sqlite: $sqlite:ident, postgres: $postgres:ident; $($body:ident),* $(,)?) => {
        $crate::common::both_stores::on_both_stores!(
            @tests super::$sqlite, super::$postgres; $($body),*
        );
    };
    (@tests $sqlite:path, $postgres:path; $($body:ident),*) => {
        mod on_sqlite {
            $(
                #[test]
                fn $body() {
                    $sqlite(super::$body);
                }
            )*
        }
        mod on_postgres {
            $(
                #[test]
                fn $body() {
                    $postgres(super::$body);
                }
            )*
        }
    };
    ($($body:ident),* $(,)?) => {
        $crate::common::both_stores::on_both_stores!(
            @tests
            $crate::common::both_stores::store_on_sqlite,
            $crate::common::both_stores::store_on_postgres;
            $($body),*
        );
    };
}

#[allow(unused_imports)]
pub(crate) use on_both_stores;
