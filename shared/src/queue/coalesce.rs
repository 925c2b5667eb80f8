//! Group commit for the two scripts a worker runs for every job (start and finish): calls made
//! while earlier ones are on their way to Redis go together in the next script call.
//!
//! Redis spends about 10 µs on an `EVALSHA` beyond the commands the script runs, and as much
//! again reading the request and writing the answer (the queue bench's per-command figures,
//! docs/operations.md). A worker's deliveries arrive together (one `XREADGROUP`) and, under
//! load, its jobs end together, so one call for all of them takes most of that off Redis's
//! single core. An idle queue sees no change: a lone call goes out at once, as one of one.
//!
//! No task outlives its batch: the first caller that finds a free slot sends the batch in a task
//! of its own (so a caller that gives up cannot strand the others), and that task keeps sending
//! what gathered meanwhile until nothing waits.

use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::{Queue, QueueError};

/// Script calls on their way at once. More concurrent calls wait for the next batch; two keep
/// one batch gathering while the other is in Redis.
const IN_FLIGHT: usize = 2;

/// Jobs in one script call at most: Redis runs nothing else while a script runs.
pub(super) const MAX_BATCH: usize = 64;

type Reply<A> = oneshot::Sender<Result<A, QueueError>>;

/// Sends one batch; answers one result per request, in order, or one error for all.
pub(super) type Flush<R, A> =
    fn(Queue, Vec<R>) -> BoxFuture<'static, Result<Vec<Result<A, QueueError>>, QueueError>>;

pub(super) struct Coalescer<R, A> {
    state: Mutex<State<R, A>>,
}

struct State<R, A> {
    waiting: Vec<(R, Reply<A>)>,
    in_flight: usize,
}

impl<R, A> State<R, A> {
    fn take(&mut self) -> Vec<(R, Reply<A>)> {
        let n = self.waiting.len().min(MAX_BATCH);
        self.waiting.drain(..n).collect()
    }
}

impl<R: Send + 'static, A: Send + 'static> Coalescer<R, A> {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                waiting: Vec::new(),
                in_flight: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<R, A>> {
        // Nothing panics while holding the lock; a poisoned one still holds consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `req` with whatever else is waiting, and gives back its own answer.
    pub(super) async fn call(
        self: &Arc<Self>,
        queue: &Queue,
        req: R,
        flush: Flush<R, A>,
    ) -> Result<A, QueueError> {
        let (tx, rx) = oneshot::channel();
        let batch = {
            let mut s = self.lock();
            s.waiting.push((req, tx));
            if s.in_flight < IN_FLIGHT {
                s.in_flight += 1;
                Some(s.take())
            } else {
                None
            }
        };
        if let Some(batch) = batch {
            tokio::spawn(self.clone().send(queue.clone(), batch, flush));
        }
        rx.await.unwrap_or_else(|_| {
            Err(QueueError::Protocol(
                "a batched script call was abandoned (its task panicked)".to_owned(),
            ))
        })
    }

    async fn send(
        self: Arc<Self>,
        queue: Queue,
        mut batch: Vec<(R, Reply<A>)>,
        flush: Flush<R, A>,
    ) {
        let slot = Slot(&self);
        loop {
            let (reqs, replies): (Vec<R>, Vec<Reply<A>>) = batch.into_iter().unzip();
            let n = reqs.len();
            match flush(queue.clone(), reqs).await {
                Ok(answers) if answers.len() == n => {
                    for (tx, answer) in replies.into_iter().zip(answers) {
                        let _ = tx.send(answer);
                    }
                }
                Ok(answers) => {
                    let e = QueueError::Protocol(format!(
                        "a batched script answered {} of {n} jobs",
                        answers.len()
                    ));
                    for tx in replies {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for tx in replies {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
            let mut s = self.lock();
            if s.waiting.is_empty() {
                s.in_flight -= 1;
                std::mem::forget(slot);
                return;
            }
            batch = s.take();
        }
    }
}

/// Gives the slot back if a batch's task unwinds; with no task left to send them, the waiting
/// callers are answered with an error (their senders dropped) rather than left hanging.
struct Slot<'a, R, A>(&'a Coalescer<R, A>);

impl<R, A> Drop for Slot<'_, R, A> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_flight -= 1;
        if s.in_flight == 0 {
            s.waiting.clear();
        }
    }
}
