//! `InFlight`: a request's replica calls, driven by the request's own task.
//!
//! A coordinated request used to run each replica call in a task of its
//! own and get the outcome back over a channel: per put that was three
//! spawns, three channel hops and the cross-thread wake-ups between them.
//! Now the request's task polls its calls itself, as one
//! `FuturesUnordered`, next to its timer.
//!
//! A call must still finish after the client has its answer (the third
//! replica of a W = 2 put still gets the write, and every outcome still
//! reaches the peer's health record). So when an `InFlight` is dropped with
//! calls left, on any path (an answer, an error, a client that went away),
//! the rest are handed to one background task that runs them to the end.

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use std::future::Future;
use std::pin::Pin;

/// One call: resolves to whatever the coordinator feeds its machine.
pub type Call<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The calls of one request that have not finished yet.
pub struct InFlight<T: Send + 'static> {
    /// Made at the first push: a `FuturesUnordered` allocates when created,
    /// and many requests never use some of theirs (a read's repairs).
    calls: Option<FuturesUnordered<Call<T>>>,
}

impl<T: Send + 'static> InFlight<T> {
    pub fn new() -> Self {
        InFlight { calls: None }
    }

    /// Starts driving `call` (it makes progress whenever [`Self::next`] is
    /// awaited, or in the background once this is dropped).
    pub fn push(&mut self, call: impl Future<Output = T> + Send + 'static) {
        self.calls
            .get_or_insert_with(FuturesUnordered::new)
            .push(Box::pin(call));
    }

    pub fn is_empty(&self) -> bool {
        self.calls.as_ref().is_none_or(FuturesUnordered::is_empty)
    }

    /// The next call to finish; pending forever while there is none, so it
    /// can sit in a `select!` next to a timer.
    pub async fn next(&mut self) -> T {
        if let Some(calls) = self.calls.as_mut() {
            if let Some(outcome) = calls.next().await {
                return outcome;
            }
        }
        std::future::pending().await
    }
}

impl<T: Send + 'static> Default for InFlight<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static> Drop for InFlight<T> {
    fn drop(&mut self) {
        let Some(calls) = self.calls.take().filter(|c| !c.is_empty()) else {
            return;
        };
        // Outside a runtime (only while the whole node is being torn down)
        // the calls are dropped with it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(calls.for_each(|_| async {}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn outcomes_come_in_completion_order_and_none_waits_forever() {
        let mut calls = InFlight::new();
        calls.push(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            "slow"
        });
        calls.push(async { "fast" });
        assert_eq!(calls.next().await, "fast");
        assert_eq!(calls.next().await, "slow");
        assert!(calls.is_empty());
        let waited = tokio::time::timeout(Duration::from_millis(20), calls.next()).await;
        assert!(waited.is_err(), "no call left: next() must not resolve");
    }

    #[tokio::test]
    async fn calls_left_when_dropped_still_run_to_the_end() {
        let finished = Arc::new(AtomicUsize::new(0));
        let mut calls = InFlight::new();
        for ms in [1, 30, 60] {
            let finished = finished.clone();
            calls.push(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        calls.next().await;
        drop(calls);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(finished.load(Ordering::SeqCst), 3);
    }
}
