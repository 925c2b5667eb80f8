//! The queue's Redis connections: a few multiplexed connections that every task shares.
//!
//! A pool that lends a connection to one task at a time costs each command a round trip of its
//! own, plus the health check deadpool-redis sends on every checkout (`UNWATCH` + `PING`): three
//! round trips of the seven a job made, measured by `cargo bench -p facecraft-shared --bench
//! queue`. Commands of concurrent tasks on one multiplexed connection are written and answered
//! together, so Redis reads many per system call, and nothing checks a connection that works.
//!
//! A connection is replaced when a command on it fails the way a broken connection does (I/O
//! error, closed, refused, or no answer within the timeout); the next command connects again,
//! so an outage delays commands and does not wedge the process.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, Value};
use tokio::sync::Mutex;

use super::QueueError;

/// A live connection and the number it got when it was made, so a failure on an old one does
/// not throw away the connection that replaced it.
struct Slot {
    conn: MultiplexedConnection,
    generation: u64,
}

struct Inner {
    client: redis::Client,
    config: AsyncConnectionConfig,
    timeout: Duration,
    slots: Box<[Mutex<Option<Slot>>]>,
    next: AtomicUsize,
    generation: AtomicU64,
}

/// `size` shared connections to one Redis; cheap to clone.
#[derive(Clone)]
pub(crate) struct Connections {
    inner: Arc<Inner>,
}

impl Connections {
    /// Connects lazily, so Redis may come up later.
    pub(crate) fn new(url: &str, size: usize, timeout: Duration) -> Result<Self, QueueError> {
        let client = redis::Client::open(url)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                config,
                timeout,
                slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
                next: AtomicUsize::new(0),
                generation: AtomicU64::new(0),
            }),
        })
    }

    /// One of the connections, in turn; connects it first when it has none. Waits at most the
    /// timeout, however many tasks are connecting the same slot.
    pub(crate) async fn get(&self) -> Result<Conn, QueueError> {
        let inner = &self.inner;
        let index = inner.next.fetch_add(1, Ordering::Relaxed) % inner.slots.len();
        let connect = async {
            let mut slot = inner.slots[index].lock().await;
            if let Some(s) = slot.as_ref() {
                return Ok((s.conn.clone(), s.generation));
            }
            let conn = inner
                .client
                .get_multiplexed_async_connection_with_config(&inner.config)
                .await?;
            let generation = inner.generation.fetch_add(1, Ordering::Relaxed);
            *slot = Some(Slot {
                conn: conn.clone(),
                generation,
            });
            Ok::<_, QueueError>((conn, generation))
        };
        let (conn, generation) = tokio::time::timeout(inner.timeout, connect)
            .await
            .map_err(|_| {
                QueueError::Pool(format!("no connection to redis within {:?}", inner.timeout))
            })??;
        Ok(Conn {
            conn,
            owner: self.clone(),
            index,
            generation,
        })
    }

    /// Forgets slot `index` if it still holds connection `generation`.
    async fn discard(&self, index: usize, generation: u64) {
        let mut slot = self.inner.slots[index].lock().await;
        if slot.as_ref().is_some_and(|s| s.generation == generation) {
            tracing::debug!(slot = index, "dropping a broken redis connection");
            *slot = None;
        }
    }
}

/// Whether an error means the connection itself is unusable (as opposed to Redis refusing one
/// command, e.g. `NOSCRIPT` or `BUSYGROUP`).
fn broken(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

/// A handle on one shared connection. Commands sent through one handle are answered in the
/// order sent, even after a timeout, which `Queue::settle` relies on.
pub(crate) struct Conn {
    conn: MultiplexedConnection,
    owner: Connections,
    index: usize,
    generation: u64,
}

impl Conn {
    async fn check<T>(&self, result: Result<T, RedisError>) -> Result<T, RedisError> {
        if let Err(e) = &result {
            if broken(e) {
                self.owner.discard(self.index, self.generation).await;
            }
        }
        result
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.conn.req_packed_command(cmd).await;
            self.check(result).await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self.conn.req_packed_commands(pipeline, offset, count).await;
            self.check(result).await
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}
