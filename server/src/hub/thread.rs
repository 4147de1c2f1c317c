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

use super::{Command, ConnId, Hub, Identity, SessionKey, Waiter};
use crate::{send_queue::SendQueue, store::writer::Outcome};

/// What connections (and the store writer) tell the hub thread.
#[derive(Debug)]
pub enum Event {
    Connect {
        id: ConnId,
        queue: SendQueue,
        identity: Identity,
    },
    Command {
        id: ConnId,
        cmd: Command,
    },
    /// A frame that did not make a valid command, and the error frame it earns.
    Reject {
        id: ConnId,
        reply: ServerMsg,
    },
    Disconnect {
        id: ConnId,
    },
    /// Close a connection with this code and reason, after what is already queued.
    Kick {
        id: ConnId,
        code: u16,
        reason: &'static str,
    },
    /// An account was created: the hub can name them and others can invite them.
    UserAdded {
        username: String,
        display_name: String,
    },
    /// Sign-in sessions ended: close the sockets of `username` opened with `session`,
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

/// What [`HubSender::try_send`] did.
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
pub struct HubSender {
    events: mpsc::Sender<Event>,
    ids: Arc<AtomicU64>,
}

/// How many events may wait for the hub. Connections wait when it is full, which slows
/// every sender down evenly instead of letting memory grow.
pub const EVENT_QUEUE: usize = 4096;

impl HubSender {
    /// A username and the receiving end for [`HubSender::spawn`]. Split in two so the
    /// store writer can be given a username before the hub exists.
    pub fn channel() -> (HubSender, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        (
            HubSender {
                events: tx,
                ids: Arc::new(AtomicU64::new(1)),
            },
            rx,
        )
    }

    /// Runs `hub` on a thread of its own until [`Event::Stop`] (or every username is
    /// dropped). A thread, not a task, because the hub reads history from storage
    /// synchronously.
    pub fn spawn(hub: Hub, events: mpsc::Receiver<Event>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("confab-hub".into())
            .spawn(move || run(hub, events))
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
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

    /// Tells the hub a connection is gone, from code that cannot wait (a destructor): now
    /// if the queue has room, else from a task.
    pub fn leave(&self, id: ConnId) {
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

    /// The step from a commit to the hub: after every transaction, the store writer's
    /// outcomes are handed to the hub, which only then acknowledges each message to its
    /// sender and delivers it to the room. It is the only way a message gets from the
    /// store to anyone.
    ///
    /// Why a step of its own: the [store writer](crate::store::writer) is a plain thread
    /// that knows nothing of the hub (it reports to whatever it is given), and the hub
    /// cannot exist before the writer (it is built with the writer's handle). So the hub's
    /// queue is made first ([`HubSender::channel`]) and the writer is given this, which
    /// sends into it.
    ///
    /// A report waits when the hub's queue is full rather than being dropped: dropping it
    /// would lose the acknowledgement and delivery of messages that are stored. Waiting
    /// holds up the next commit instead, the writer's queue fills, and the hub refuses new
    /// messages as `unavailable` — the pressure reaches the clients instead of memory.
    /// Waiting is fine on the writer's own thread, outside the async runtime. Once the hub
    /// has stopped, reports are dropped: nobody is left to tell.
    pub fn commit_reports(self) -> impl FnMut(Vec<Outcome<Option<Waiter>>>) + Send + 'static {
        move |outcomes| {
            self.blocking_send(Event::Committed(outcomes));
        }
    }
}

fn run(mut hub: Hub, mut events: mpsc::Receiver<Event>) {
    while let Some(event) = events.blocking_recv() {
        match event {
            Event::Connect {
                id,
                queue,
                identity,
            } => hub.connect(id, queue, identity),
            Event::Command { id, cmd } => hub.apply(id, cmd),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Write, Written};

    fn outcome(client_id: &str) -> Outcome<Option<Waiter>> {
        Outcome {
            tag: Some(Waiter {
                conn: 1,
                client_id: client_id.into(),
            }),
            write: Write::DeleteRoom {
                room: "general".into(),
            },
            result: Ok(Written::Done),
        }
    }

    /// The client ids of a committed batch.
    fn client_ids(event: Option<Event>) -> Vec<String> {
        match event {
            Some(Event::Committed(outcomes)) => outcomes
                .into_iter()
                .filter_map(|o| o.tag.map(|w| w.client_id))
                .collect(),
            other => panic!("expected a committed batch, got {other:?}"),
        }
    }

    #[test]
    fn each_batch_reaches_the_hub_whole_and_in_order_until_the_hub_stops() {
        let (hub, mut events) = HubSender::channel();
        let mut report = hub.commit_reports();
        // From a thread of its own, like the store writer's.
        let mut report = std::thread::spawn(move || {
            report(vec![outcome("a"), outcome("b")]);
            report(vec![outcome("c")]);
            report
        })
        .join()
        .expect("the reporting thread");
        assert_eq!(client_ids(events.blocking_recv()), ["a", "b"]);
        assert_eq!(client_ids(events.blocking_recv()), ["c"]);
        // The hub is gone: the report is dropped, and the writer carries on.
        drop(events);
        report(vec![outcome("d")]);
    }
}
