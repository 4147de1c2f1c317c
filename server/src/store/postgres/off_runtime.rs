//! Dropping a synchronous `postgres` connection closes it by running its own small Tokio
//! runtime, which panics on a thread that is already driving async tasks. The store's
//! connections live on plain threads (the writer, the readers), but a pool or a store
//! can still end on a Tokio worker (a start that fails half-way, the end of `serve`).
//! [`OffRuntime`] holds such a value and, if it is dropped where a runtime is running,
//! lets a short-lived thread of its own drop it instead.

use std::ops::{Deref, DerefMut};

pub struct OffRuntime<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> OffRuntime<T> {
    pub fn new(value: T) -> Self {
        Self(Some(value))
    }
}

impl<T: Send + 'static> Deref for OffRuntime<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Some until dropped.
        self.0.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<T: Send + 'static> DerefMut for OffRuntime<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<T: Send + 'static> Drop for OffRuntime<T> {
    fn drop(&mut self) {
        let Some(value) = self.0.take() else { return };
        if tokio::runtime::Handle::try_current().is_err() {
            return drop(value);
        }
        if let Err(e) = std::thread::Builder::new()
            .name("confab-pg-close".into())
            .spawn(move || drop(value))
        {
            // Leaking a connection beats a panic; the process is short of threads anyway.
            tracing::warn!("cannot start a thread to close a PostgreSQL connection: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_runtime_owning_value_is_dropped_off_the_async_thread() {
        // A current-thread runtime stands in for a `postgres::Client`: dropping one on
        // this thread would panic.
        let inner = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let held = OffRuntime::new(inner);
        drop(held);
    }

    #[test]
    fn outside_a_runtime_it_drops_in_place() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        drop(OffRuntime::new(tx));
        assert!(rx.recv().is_err(), "the sender was dropped by now");
    }
}
