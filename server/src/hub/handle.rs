//! Running a [`Hub`] on its own thread, and what the rest of the server tells it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use confab_shared::ServerMsg;
use tokio::sync::mpsc;

use super::{Command, Hub, Identity, SessionId, SessionKey, Waiter};
use crate::{outbox::Outbox, store::writer::Outcome};

/// What connections (and the store writer) tell the hub thread.
#[derive(Debug)]
pub enum Event {
    Connect {
        id: SessionId,
        outbox: Outbox,
        identity: Identity,
    },
    Command {
        id: SessionId,
        cmd: Command,
    },
    /// A frame that did not make a valid command, and the error frame it earns.
    Reject {
        id: SessionId,
        reply: ServerMsg,
    },
    Disconnect {
        id: SessionId,
    },
    /// Close a connection with this code and reason, after what is already queued.
    Kick {
        id: SessionId,
        code: u16,
        reason: &'static str,
    },
    /// An account was created: the hub can name them and others can invite them.
    UserAdded {
        username: String,
        display_name: String,
    },
    /// Sessions were signed out: close the sockets of `username` opened with `session`,
    /// or all of them when `session` is `None`.
    SignedOut {
        username: String,
        session: Option<SessionKey>,
    },
    /// A batch of writes is committed (or failed).
    Committed(Vec<Outcome<Option<Waiter>>>),
    /// Close every connection with 1001.
    Shutdown,
    /// Let go of storage and end the hub thread.
    Stop,
}

/// What [`HubHandle::try_send`] did.
#[derive(Debug)]
pub enum TrySend {
    Sent,
    /// The queue is full: here is the event back, to send by waiting.
    Full(Event),
    /// The hub has stopped.
    Stopped,
}

/// A cloneable way to reach the hub thread.
#[derive(Debug, Clone)]
pub struct HubHandle {
    events: mpsc::Sender<Event>,
    ids: Arc<AtomicU64>,
}

/// How many events may wait for the hub. Connections wait when it is full, which slows
/// every sender down evenly instead of letting memory grow.
pub const EVENT_QUEUE: usize = 4096;

impl HubHandle {
    /// A handle and the receiving end for [`HubHandle::spawn`]. Split in two so the
    /// store writer can be given a handle before the hub exists.
    pub fn channel() -> (HubHandle, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        (
            HubHandle {
                events: tx,
                ids: Arc::new(AtomicU64::new(1)),
            },
            rx,
        )
    }

    /// Runs `hub` on a thread of its own until [`Event::Stop`] (or every handle is
    /// dropped). A thread, not a task, because the hub reads history from storage
    /// synchronously.
    pub fn spawn(hub: Hub, events: mpsc::Receiver<Event>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("confab-hub".into())
            .spawn(move || run(hub, events))
    }

    /// A fresh session id.
    pub fn next_session_id(&self) -> SessionId {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Delivers an event; `false` if the hub has stopped.
    pub async fn send(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Delivers an event if the queue has room now, or gives it back.
    pub fn try_send(&self, event: Event) -> TrySend {
        match self.events.try_send(event) {
            Ok(()) => TrySend::Sent,
            Err(mpsc::error::TrySendError::Full(event)) => TrySend::Full(event),
            Err(mpsc::error::TrySendError::Closed(_)) => TrySend::Stopped,
        }
    }

    /// Tells the hub a session is gone, from code that cannot wait (a destructor): now
    /// if the queue has room, else from a task.
    pub fn leave(&self, id: SessionId) {
        if let Err(mpsc::error::TrySendError::Full(event)) =
            self.events.try_send(Event::Disconnect { id })
        {
            let events = self.events.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = events.send(event).await;
                });
            }
        }
    }

    /// Delivers an event from a thread outside the async runtime (the store writer).
    pub fn blocking_send(&self, event: Event) -> bool {
        self.events.blocking_send(event).is_ok()
    }
}

fn run(mut hub: Hub, mut events: mpsc::Receiver<Event>) {
    while let Some(event) = events.blocking_recv() {
        match event {
            Event::Connect {
                id,
                outbox,
                identity,
            } => hub.connect(id, outbox, identity),
            Event::Command { id, cmd } => hub.handle(id, cmd),
            Event::Reject { id, reply } => hub.reject(id, &reply),
            Event::Disconnect { id } => hub.disconnect(id),
            Event::Kick { id, code, reason } => hub.kick(id, code, reason),
            Event::UserAdded {
                username,
                display_name,
            } => hub.user_added(username, display_name),
            Event::SignedOut { username, session } => hub.signed_out(&username, session),
            Event::Committed(outcomes) => hub.committed(outcomes),
            Event::Shutdown => hub.shutdown(),
            Event::Stop => {
                hub.stop();
                break;
            }
        }
    }
}
