//! Whether the server's own threads are alive: the hub thread and the store writer.
//!
//! Why this exists: both are plain threads that every chat message goes through, and
//! nothing else notices when one of them dies. A panic in either used to leave a process
//! that accepted sockets, answered `/healthz` with "ok", and chatted with nobody. Now each
//! thread carries a [`Guard`] that records its death here, and three readers act on it:
//!
//! - `/healthz` answers **503** naming the part that stopped ([`Health::check`]), so a load
//!   balancer or an operator sees it;
//! - the WebSocket upgrade is refused with 503 instead of accepting a socket that would
//!   only be dropped;
//! - `serve` wakes up ([`Health::failure`]), closes the sockets it still can with 1011 and
//!   returns an error, so the process exits non-zero and its supervisor (systemd, the
//!   container runtime) starts a fresh one. Clients then reconnect and resume as after any
//!   restart: nothing was acknowledged that is not stored.
//!
//! The server does not try to restart a dead thread itself. The hub's state is gone with
//! it (or was left half-updated by the panic), and a new process rebuilds it from the
//! store, which is the one recovery path that is tested every day.
//!
//! A death is recorded once and never cleared: two flags and a [`Notify`]. Cheap enough to
//! read on every `/healthz` and every upgrade.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::sync::Notify;

/// A thread of the server whose death ends the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The hub thread (`hub::thread`).
    Hub,
    /// The store writer thread (`store::writer`).
    Writer,
}

impl Part {
    const ALL: [Part; 2] = [Part::Hub, Part::Writer];

    fn index(self) -> usize {
        match self {
            Part::Hub => 0,
            Part::Writer => 1,
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Hub => "hub thread",
            Part::Writer => "store writer",
        })
    }
}

/// The shared record of which parts have stopped. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stopped: [AtomicBool; 2],
    changed: Notify,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `part` has stopped for good, and wakes whoever waits in
    /// [`Health::failure`].
    pub fn stopped(&self, part: Part) {
        self.inner.stopped[part.index()].store(true, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// Whether `part` has stopped.
    pub fn has_stopped(&self, part: Part) -> bool {
        self.inner.stopped[part.index()].load(Ordering::SeqCst)
    }

    /// The first part (hub before writer) that has stopped, if any.
    pub fn first_stopped(&self) -> Option<Part> {
        Part::ALL.into_iter().find(|&p| self.has_stopped(p))
    }

    /// `Ok` while every part runs; otherwise what `/healthz` says, one line per part that
    /// stopped ("hub thread stopped").
    pub fn check(&self) -> Result<(), String> {
        let report: String = Part::ALL
            .into_iter()
            .filter(|&p| self.has_stopped(p))
            .map(|p| format!("{p} stopped\n"))
            .collect();
        if report.is_empty() {
            Ok(())
        } else {
            Err(report)
        }
    }

    /// Resolves with the first part that stopped, as soon as one has (at once if one
    /// already had).
    pub async fn failure(&self) -> Part {
        loop {
            // Registered before looking, so a death between the look and the wait
            // still wakes us.
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(part) = self.first_stopped() {
                return part;
            }
            notified.await;
        }
    }

    /// A guard for the thread that runs `part`: kept for the thread's whole life, it
    /// records the part as stopped if the thread unwinds from a panic. A thread that
    /// returns normally (at shutdown) is not a failure.
    pub fn guard(&self, part: Part) -> Guard {
        Guard {
            health: self.clone(),
            part,
        }
    }
}

/// See [`Health::guard`].
#[derive(Debug)]
pub struct Guard {
    health: Health,
    part: Part,
}

impl Guard {
    /// Records the part as stopped now, without waiting for the thread to unwind: for a
    /// thread that caught its panic and has cleaning up to do first.
    pub fn stopped(&self) {
        self.health.stopped(self.part);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the {} panicked and has stopped", self.part);
            self.health.stopped(self.part);
        }
    }
}

/// The text of a caught panic, for logs.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".to_owned())
}

/// Making a thread panic on purpose, to test all of the above from outside: **debug
/// builds only**.
///
/// With `CONFAB_TEST_PANIC=hub` the hub thread panics when it is given a chat message
/// whose body is [`TRIGGER`](fault::TRIGGER); with `CONFAB_TEST_PANIC=writer` the store
/// writer panics on the batch that holds such a message, before committing it. Other
/// messages go through as usual, so a test can have some acknowledged first. The
/// integration tests in `server/tests/thread_failure.rs` start the binary that
/// `cargo test` built, with the variable set.
///
/// Why an environment variable under `debug_assertions` rather than a cargo feature: a
/// feature the tests need would be off in a plain `cargo test --workspace`, and the tests
/// would be skipped (`required-features`) or fail. `cargo test` builds the binary in the
/// test profile, which has debug assertions; `cargo build --release` (and
/// `scripts/run.sh`) does not, and there this module is not compiled at all: the code that
/// reads the variable and the panics it arms do not exist in the release binary, so no
/// setting and no client input can reach them. Even in a debug build the message alone
/// does nothing: only whoever starts the process sets its environment, and the server
/// logs a warning at startup when it is set.
#[cfg(debug_assertions)]
pub mod fault {
    use std::sync::OnceLock;

    use super::Part;

    /// The environment variable that arms an injected panic.
    pub const VAR: &str = "CONFAB_TEST_PANIC";

    /// The body of the chat message that sets off an armed panic.
    pub const TRIGGER: &str = "injected panic, test builds only";

    /// The part armed to panic, read once.
    pub fn armed() -> Option<Part> {
        static ARMED: OnceLock<Option<Part>> = OnceLock::new();
        *ARMED.get_or_init(|| match std::env::var(VAR).ok()?.as_str() {
            "hub" => Some(Part::Hub),
            "writer" => Some(Part::Writer),
            other => {
                tracing::warn!("{VAR}={other:?} is neither \"hub\" nor \"writer\": ignored");
                None
            }
        })
    }

    /// Panics if `part` is armed and `body` is the [`TRIGGER`]. Called by each thread
    /// where its injected panic belongs.
    pub fn maybe_panic(part: Part, body: &str) {
        if body == TRIGGER && armed() == Some(part) {
            panic!("injected panic in the {part} ({VAR})");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn healthy_until_a_part_stops_then_names_it() {
        let health = Health::new();
        assert_eq!(health.check(), Ok(()));
        assert_eq!(health.first_stopped(), None);
        health.stopped(Part::Writer);
        assert_eq!(health.check(), Err("store writer stopped\n".to_owned()));
        assert_eq!(health.first_stopped(), Some(Part::Writer));
        health.clone().stopped(Part::Hub);
        assert_eq!(
            health.check(),
            Err("hub thread stopped\nstore writer stopped\n".to_owned())
        );
        assert_eq!(health.first_stopped(), Some(Part::Hub));
    }

    #[test]
    fn a_guard_records_a_panic_but_not_a_normal_end() {
        let health = Health::new();
        let guard = health.guard(Part::Hub);
        std::thread::spawn(move || {
            let _guard = guard;
        })
        .join()
        .expect("ends normally");
        assert_eq!(health.check(), Ok(()), "a normal end is not a failure");

        let guard = health.guard(Part::Writer);
        let outcome = std::thread::spawn(move || {
            let _guard = guard;
            panic!("a bug in the writer");
        })
        .join();
        assert!(outcome.is_err(), "the thread still panics as before");
        assert!(health.has_stopped(Part::Writer));
        assert!(!health.has_stopped(Part::Hub));
    }

    #[tokio::test]
    async fn failure_wakes_on_a_death_from_another_thread_and_after_one() {
        let health = Health::new();
        let waiting = tokio::spawn({
            let health = health.clone();
            async move { health.failure().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "nothing has stopped yet");
        let remote = health.clone();
        std::thread::spawn(move || remote.stopped(Part::Writer))
            .join()
            .expect("thread");
        let part = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken promptly")
            .expect("task");
        assert_eq!(part, Part::Writer);
        // A waiter that arrives late learns of it at once.
        let late = tokio::time::timeout(Duration::from_secs(1), health.failure()).await;
        assert_eq!(late.expect("at once"), Part::Writer);
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        let s: Box<dyn std::any::Any + Send> = Box::new("static");
        assert_eq!(panic_message(s.as_ref()), "static");
        let s: Box<dyn std::any::Any + Send> = Box::new(format!("formatted {}", 1));
        assert_eq!(panic_message(s.as_ref()), "formatted 1");
        let s: Box<dyn std::any::Any + Send> = Box::new(7_u8);
        assert_eq!(panic_message(s.as_ref()), "a non-string panic");
    }
}
