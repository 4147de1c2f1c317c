//! The step from a commit to the hub: after every transaction, the store writer's
//! outcomes are handed to the hub, which only then acknowledges each message to its
//! sender and delivers it to the room. It is the only way a message gets from the
//! store to anyone.
//!
//! Why a step of its own: the [store writer](crate::store::writer) is a plain thread
//! that knows nothing of the hub (it reports to whatever it is given), and the hub
//! cannot exist before the writer (it is built with the writer's handle). So the hub's
//! queue is made first ([`HubHandle::channel`]) and the writer is given this, which
//! sends into it.
//!
//! A report waits when the hub's queue is full rather than being dropped: dropping it
//! would lose the acknowledgement and delivery of messages that are stored. Waiting
//! holds up the next commit instead, the writer's queue fills, and the hub refuses new
//! messages as `unavailable` — the pressure reaches the clients instead of memory.
//! Waiting is fine on the writer's own thread, outside the async runtime. Once the hub
//! has stopped, reports are dropped: nobody is left to tell.

use crate::{
    hub::{Event, HubHandle, Waiter},
    store::writer::Outcome,
};

/// The store writer's report function: sends each committed batch's outcomes to the
/// hub, in commit order, as one [`Event::Committed`].
pub fn to_hub(hub: HubHandle) -> impl FnMut(Vec<Outcome<Option<Waiter>>>) + Send + 'static {
    move |outcomes| {
        hub.blocking_send(Event::Committed(outcomes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Write, Written};

    fn outcome(client_id: &str) -> Outcome<Option<Waiter>> {
        Outcome {
            tag: Some(Waiter {
                session: 1,
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
        let (hub, mut events) = HubHandle::channel();
        let mut report = to_hub(hub);
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
