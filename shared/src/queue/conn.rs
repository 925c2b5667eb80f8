//! The queue's Redis connections: a few multiplexed connections that every task shares.
//!
//! A pool that lends a connection to one task at a time costs each command a round trip of its
//! own, plus the health check deadpool-redis sends on every checkout (`UNWATCH` + `PING`): three
//! round trips of the seven a job made, measured by `cargo bench -p facecraft-shared --bench
//! queue`. Commands of concurrent tasks on one multiplexed connection are written and answered
//! together, so Redis reads many per system call, and nothing checks a connection that works.
//!
//! A connection is replaced when a command on it fails the way a broken connection does (I/O
//! error, closed, refused, no answer within the timeout, or `READONLY` from a primary that a
//! failover turned into a replica); the next command connects again, so an outage delays
//! commands and does not wedge the process.
//!
//! Three ways to reach Redis ([`Connector`], from `RedisSettings::mode`): one node by URL; the
//! current primary as Sentinel names it, asked again on every new connection, so after a
//! failover the replacement connection goes to the promoted replica; or a cluster, whose
//! connection redis-rs routes by slot and follows through `MOVED`/`ASK` and failovers itself.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, TlsMode, Value,
};
use tokio::sync::Mutex;

use super::QueueError;
use crate::config::{RedisMode, RedisSettings};

/// Opens connections in the configured mode.
pub(crate) enum Connector {
    Single(redis::Client),
    /// Locked while asking: redis-rs keeps the Sentinels' connections in the client.
    Sentinel(Mutex<SentinelClient>),
    Cluster {
        client: redis::cluster::ClusterClient,
        /// The seed nodes, for subscriptions: a cluster delivers `PUBLISH` on every node.
        nodes: Vec<redis::ConnectionInfo>,
    },
}

/// The TLS mode a URL asks for, to carry it over to nodes that Sentinel names.
fn tls_mode(addr: &ConnectionAddr) -> Option<TlsMode> {
    match addr {
        ConnectionAddr::TcpTls { insecure: true, .. } => Some(TlsMode::Insecure),
        ConnectionAddr::TcpTls { .. } => Some(TlsMode::Secure),
        _ => None,
    }
}

impl Connector {
    /// `response_timeout` applies where redis-rs sets it per client (cluster mode); elsewhere
    /// the caller's `AsyncConnectionConfig` does.
    pub(crate) fn new(
        settings: &RedisSettings,
        response_timeout: Option<Duration>,
    ) -> Result<Self, QueueError> {
        // `rediss://` builds a rustls client, which needs a process-wide provider when more than
        // one is compiled in. Installing is a no-op after the first time.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mode = settings.mode().map_err(QueueError::Config)?;
        let base = settings.url.as_str().into_connection_info()?;
        Ok(match mode {
            RedisMode::Single => Self::Single(redis::Client::open(base)?),
            RedisMode::Sentinel { sentinels, master } => {
                let mut node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(base.redis_settings().clone());
                if let Some(tls) = tls_mode(base.addr()) {
                    node = node.set_tls_mode(tls);
                }
                Self::Sentinel(Mutex::new(SentinelClient::build(
                    sentinels,
                    master,
                    Some(node),
                    SentinelServerType::Master,
                )?))
            }
            RedisMode::Cluster { nodes } => {
                let nodes = nodes
                    .iter()
                    .map(|n| {
                        let info = n.as_str().into_connection_info()?;
                        Ok(if info.redis_settings().password().is_none() {
                            info.set_redis_settings(base.redis_settings().clone())
                        } else {
                            info
                        })
                    })
                    .collect::<Result<Vec<_>, RedisError>>()?;
                let mut builder =
                    ClusterClientBuilder::new(nodes.clone()).connection_timeout(settings.timeout());
                if let Some(tls) = tls_mode(base.addr()) {
                    builder = builder.tls(tls);
                }
                if let Some(t) = response_timeout {
                    builder = builder.response_timeout(t);
                } else {
                    // Blocking reads bound their wait themselves.
                    builder = builder.response_timeout(Duration::from_secs(24 * 3600));
                }
                Self::Cluster {
                    client: builder.build()?,
                    nodes,
                }
            }
        })
    }

    pub(crate) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> Result<AnyConn, RedisError> {
        match self {
            Self::Single(client) => Ok(AnyConn::Node(
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await?,
            )),
            Self::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                let conn = client
                    .get_multiplexed_async_connection_with_config(config)
                    .await?;
                tracing::debug!(primary = ?client.get_connection_info().addr(), "connected to the primary Sentinel names");
                Ok(AnyConn::Node(conn))
            }
            Self::Cluster { client, .. } => {
                Ok(AnyConn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// A connection for `SUBSCRIBE`: the primary in Sentinel mode; in a cluster the first seed
    /// node that answers, as every node delivers every `PUBLISH`.
    pub(crate) async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        match self {
            Self::Single(client) => client.get_async_pubsub().await,
            Self::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                client.get_async_pubsub().await
            }
            Self::Cluster { nodes, .. } => {
                let mut last = None;
                for node in nodes {
                    match redis::Client::open(node.clone()) {
                        Ok(c) => match c.get_async_pubsub().await {
                            Ok(p) => return Ok(p),
                            Err(e) => last = Some(e),
                        },
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    RedisError::from((redis::ErrorKind::InvalidClientConfig, "no cluster node"))
                }))
            }
        }
    }
}

/// One node's connection, or a cluster's (which holds one per node and routes by key).
#[derive(Clone)]
pub(crate) enum AnyConn {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl AnyConn {
    /// Redis `WAIT`: on the connection that wrote, since it counts that client's writes; in a
    /// cluster, on the primary of `key`'s slot (the cluster connection keeps one connection per
    /// node, so this is the one the write went through). Answers how many replicas have them.
    pub(crate) async fn wait_replicas(
        &mut self,
        key: &str,
        replicas: u32,
        timeout: Duration,
    ) -> Result<u32, RedisError> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout.as_millis() as u64);
        match self {
            Self::Node(c) => cmd.query_async(c).await,
            Self::Cluster(c) => {
                let route = Route::with_slot(Slot::for_key(key), SlotAddr::Master);
                let v = c
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(v)?)
            }
        }
    }
}

impl ConnectionLike for AnyConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(_) => 0,
        }
    }
}

/// A live connection and the number it got when it was made, so a failure on an old one does
/// not throw away the connection that replaced it.
struct Held {
    conn: AnyConn,
    generation: u64,
}

struct Inner {
    connector: Connector,
    config: AsyncConnectionConfig,
    timeout: Duration,
    slots: Box<[Mutex<Option<Held>>]>,
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
    pub(crate) fn new(settings: &RedisSettings) -> Result<Self, QueueError> {
        let (size, timeout) = (settings.pool_size, settings.timeout());
        let connector = Connector::new(settings, Some(timeout))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        Ok(Self {
            inner: Arc::new(Inner {
                connector,
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
            let conn = inner.connector.connect(&inner.config).await?;
            let generation = inner.generation.fetch_add(1, Ordering::Relaxed);
            *slot = Some(Held {
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

    pub(crate) async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        self.inner.connector.pubsub().await
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
        // A primary demoted by a failover keeps its clients and refuses their writes.
        || e.code() == Some("READONLY")
}

/// A handle on one shared connection. Commands sent through one handle are answered in the
/// order sent, even after a timeout, which `Queue::settle` relies on.
pub(crate) struct Conn {
    conn: AnyConn,
    owner: Connections,
    index: usize,
    generation: u64,
}

impl Conn {
    /// Drops this connection from its slot: the next command there connects afresh (and in
    /// Sentinel mode asks for the current primary).
    pub(crate) async fn discard(&self) {
        self.owner.discard(self.index, self.generation).await;
    }

    pub(crate) async fn wait_replicas(
        &mut self,
        key: &str,
        replicas: u32,
        timeout: Duration,
    ) -> Result<u32, RedisError> {
        let result = self.conn.wait_replicas(key, replicas, timeout).await;
        self.check(result).await
    }

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
