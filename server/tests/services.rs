//! The harness behind the cluster tests (tests/common/services.rs), proven against the
//! real servers with real clients: a round trip through each, a restart of each, and no
//! server or directory left behind, even by a test that panics.
//!
//! PostgreSQL is driven with the synchronous `postgres` client in plain `#[test]`s: it runs
//! its own runtime and must not be called from inside Tokio's.

mod common;

use std::{net::TcpListener, path::PathBuf, thread, time::Duration};

use common::services::{Postgres, Redis, process_alive};
use futures_util::StreamExt;
use postgres::NoTls;
use redis::AsyncTypedCommands;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

fn connect(pg: &Postgres) -> postgres::Client {
    postgres::Client::connect(&pg.url(), NoTls).expect("connect to the test PostgreSQL")
}

#[test]
fn postgres_keeps_committed_rows_across_a_restart() {
    let mut pg = Postgres::start().expect("start PostgreSQL");
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port())
    );
    let mut client = connect(&pg);
    client
        .batch_execute("CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)")
        .expect("create a table");
    for body in ["first", "second"] {
        client
            .execute("INSERT INTO notes (body) VALUES ($1)", &[&body])
            .expect("insert");
    }
    let bodies = |client: &mut postgres::Client| -> Vec<String> {
        client
            .query("SELECT body FROM notes ORDER BY id", &[])
            .expect("select")
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    assert_eq!(bodies(&mut client), ["first", "second"]);
    let settings: Vec<String> = ["fsync", "synchronous_commit", "listen_addresses"]
        .iter()
        .map(|name| {
            client
                .query_one("SELECT current_setting($1)", &[name])
                .expect("read a setting")
                .get(0)
        })
        .collect();
    assert_eq!(settings, ["off", "off", "127.0.0.1"]);

    let pid_before = pg.pid().expect("a running server has a pid");
    pg.restart().expect("restart PostgreSQL");
    assert!(!process_alive(pid_before), "the old postmaster is gone");
    assert_ne!(pg.pid(), Some(pid_before), "a new postmaster runs");

    // The old connection was cut by the restart; a new one on the same URL sees the rows.
    assert!(client.query("SELECT 1", &[]).is_err());
    let mut client = connect(&pg);
    assert_eq!(bodies(&mut client), ["first", "second"]);
    client
        .execute("INSERT INTO notes (body) VALUES ('third')", &[])
        .expect("insert after the restart");
    assert_eq!(bodies(&mut client), ["first", "second", "third"]);

    // Stopped, nothing answers; started again, the same data is back.
    pg.stop().expect("stop PostgreSQL");
    assert!(postgres::Client::connect(&pg.url(), NoTls).is_err());
    pg.start_again().expect("start PostgreSQL again");
    assert_eq!(bodies(&mut connect(&pg)), ["first", "second", "third"]);
}

#[tokio::test]
async fn redis_round_trips_and_pub_sub_and_comes_back_empty_after_a_restart() {
    let mut redis = Redis::start().expect("start Redis");
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    let client = redis::Client::open(redis.url()).expect("Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test Redis");
    conn.set("greeting", "hello").await.expect("SET");
    assert_eq!(
        conn.get("greeting").await.expect("GET").as_deref(),
        Some("hello")
    );

    let mut pubsub = client.get_async_pubsub().await.expect("pub/sub connection");
    pubsub.subscribe("room:lobby").await.expect("SUBSCRIBE");
    let receivers = conn
        .publish("room:lobby", "a message")
        .await
        .expect("PUBLISH");
    assert_eq!(receivers, 1, "the subscriber is counted");
    let mut messages = pubsub.into_on_message();
    let message = timeout(WAIT, messages.next())
        .await
        .expect("the message arrives")
        .expect("the stream is open");
    assert_eq!(message.get_channel_name(), "room:lobby");
    assert_eq!(
        message.get_payload::<String>().expect("payload"),
        "a message"
    );

    let pid_before = redis.pid().expect("a running server has a pid");
    redis.restart().expect("restart Redis");
    assert!(!process_alive(pid_before), "the old server is gone");

    // The subscription died with the old server: its stream ends instead of hanging.
    assert!(
        timeout(WAIT, messages.next())
            .await
            .expect("the stream ends")
            .is_none()
    );
    // Nothing persisted: a new connection on the same URL finds an empty server.
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("reconnect after the restart");
    assert_eq!(conn.get("greeting").await.expect("GET"), None);
    assert_eq!(
        conn.publish("room:lobby", "nobody listens")
            .await
            .expect("PUBLISH"),
        0
    );
}

/// What must be gone once a guard is dropped.
struct Traces {
    pid: u32,
    port: u16,
    dir: PathBuf,
}

impl Traces {
    fn of_postgres(pg: &Postgres) -> Self {
        Traces {
            pid: pg.pid().expect("PostgreSQL runs"),
            port: pg.port(),
            dir: pg.dir().to_owned(),
        }
    }

    fn of_redis(redis: &Redis) -> Self {
        Traces {
            pid: redis.pid().expect("Redis runs"),
            port: redis.port(),
            dir: redis.dir().to_owned(),
        }
    }

    fn assert_gone(&self) {
        assert!(!process_alive(self.pid), "pid {} still runs", self.pid);
        assert!(!self.dir.exists(), "{} still exists", self.dir.display());
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "something still listens on port {}",
            self.port
        );
    }
}

#[test]
fn dropping_the_guards_stops_the_servers_and_removes_their_directories() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let redis = Redis::start().expect("start Redis");
    let traces = [Traces::of_postgres(&pg), Traces::of_redis(&redis)];
    for trace in &traces {
        assert!(process_alive(trace.pid) && trace.dir.is_dir());
    }
    drop(pg);
    drop(redis);
    for trace in &traces {
        trace.assert_gone();
    }
}

#[test]
fn a_panicking_test_still_stops_its_servers() {
    let (sender, traces) = std::sync::mpsc::channel();
    let test = thread::spawn(move || {
        let pg = Postgres::start().expect("start PostgreSQL");
        let redis = Redis::start().expect("start Redis");
        sender
            .send([Traces::of_postgres(&pg), Traces::of_redis(&redis)])
            .expect("send the traces");
        panic!("deliberate panic (services.rs): a failing test with both servers running");
    });
    assert!(test.join().is_err(), "the thread panicked");
    for trace in &traces.recv().expect("the thread started both") {
        trace.assert_gone();
    }
}

#[test]
fn a_taken_port_is_left_for_another() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("address").port();

    let pg = Postgres::start_preferring(Some(port)).expect("start PostgreSQL");
    assert_ne!(pg.port(), port);
    assert!(
        pg.log().contains("Address already in use"),
        "PostgreSQL tried the taken port first:\n{}",
        pg.log()
    );
    postgres::Client::connect(&pg.url(), NoTls).expect("connect on the other port");

    let redis = Redis::start_preferring(Some(port)).expect("start Redis");
    assert_ne!(redis.port(), port);
    assert!(
        redis.log().contains("Address already in use"),
        "Redis tried the taken port first:\n{}",
        redis.log()
    );
    std::net::TcpStream::connect(("127.0.0.1", redis.port())).expect("Redis listens");
}

#[test]
fn a_server_that_cannot_start_says_why() {
    let mut pg = Postgres::start().expect("start PostgreSQL");
    let mut redis = Redis::start().expect("start Redis");
    pg.stop().expect("stop PostgreSQL");
    redis.stop().expect("stop Redis");
    // Something else takes their ports while they are down: a restart must keep its URL,
    // so it fails, quoting the server's own explanation.
    let pg_squatter = TcpListener::bind(("127.0.0.1", pg.port())).expect("take the port");
    let redis_squatter = TcpListener::bind(("127.0.0.1", redis.port())).expect("take the port");

    let pg_error = format!("{:#}", pg.start_again().expect_err("the port is taken"));
    assert!(
        pg_error.contains(&format!("did not start on port {}", pg.port()))
            && pg_error.contains("Address already in use")
            && pg_error.contains("postgres.log"),
        "unclear error: {pg_error}"
    );
    let redis_error = format!("{:#}", redis.start_again().expect_err("the port is taken"));
    assert!(
        redis_error.contains(&format!("did not start on port {}", redis.port()))
            && redis_error.contains("Address already in use")
            && redis_error.contains("redis.log"),
        "unclear error: {redis_error}"
    );
    assert_eq!(redis.pid(), None, "the failed Redis is not left running");

    // Once the port is free again, the same guards come back.
    drop((pg_squatter, redis_squatter));
    pg.start_again().expect("start PostgreSQL again");
    redis.start_again().expect("start Redis again");
    connect(&pg);
    std::net::TcpStream::connect(("127.0.0.1", redis.port())).expect("Redis listens");
}
