//! Redis deployments beyond one node, on loopback, for the failover test (`tests/failover.rs`):
//! a primary with a replica behind three Sentinels, and a cluster of three primaries. Each
//! gives the settings the api and workers take (`FACECRAFT_REDIS_*`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::resp;
use super::servers::{free_ports, RedisServer};

/// The name the Sentinels watch the primary under.
pub const MASTER_NAME: &str = "facecraft-test";

pub enum Topology {
    /// `nodes[0]` starts as primary, `nodes[1]` as its replica; then three Sentinels.
    Sentinel {
        nodes: Vec<RedisServer>,
        sentinels: Vec<RedisServer>,
    },
    /// Three primaries, no replicas, every slot assigned.
    Cluster { nodes: Vec<RedisServer> },
}

impl Topology {
    /// Primary, replica (AOF each) and three Sentinels with a quorum of two; a primary is
    /// judged down after `down_after_ms`.
    pub async fn sentinel(dir: &Path, down_after_ms: u64) -> Self {
        let ports = free_ports(0, 5);
        let primary = RedisServer::start(ports[0], &dir.join("redis-a")).await;
        let replica = RedisServer::start_with(
            ports[1],
            &dir.join("redis-b"),
            &["--replicaof", "127.0.0.1", &ports[0].to_string()],
        )
        .await;
        wait_for(
            Duration::from_secs(30),
            "the replica's first sync",
            || async {
                resp::cmd(ports[1], &["INFO", "replication"])
                    .await
                    .ok()
                    .and_then(|r| r.as_str().map(|s| s.contains("master_link_status:up")))
                    .unwrap_or(false)
            },
        )
        .await;
        let mut sentinels = Vec::new();
        for (i, port) in ports[2..].iter().enumerate() {
            sentinels.push(
                RedisServer::start_sentinel(
                    *port,
                    &dir.join(format!("sentinel-{i}")),
                    MASTER_NAME,
                    ports[0],
                    2,
                    down_after_ms,
                )
                .await,
            );
        }
        // Every Sentinel must know the replica and the other Sentinels before a failover can
        // be voted; they learn both through the primary within a few seconds.
        let sentinel_ports: Vec<u16> = sentinels.iter().map(|s| s.port).collect();
        wait_for(
            Duration::from_secs(60),
            "the Sentinels to see each other and the replica",
            || {
                let sentinel_ports = sentinel_ports.clone();
                async move {
                    for p in sentinel_ports {
                        let Ok(r) = resp::cmd(p, &["SENTINEL", "MASTER", MASTER_NAME]).await else {
                            return false;
                        };
                        let fields = r.strings();
                        let get = |k: &str| {
                            fields
                                .iter()
                                .position(|f| f == k)
                                .and_then(|i| fields.get(i + 1))
                                .and_then(|v| v.parse::<u32>().ok())
                                .unwrap_or(0)
                        };
                        if get("num-slaves") < 1 || get("num-other-sentinels") < 2 {
                            return false;
                        }
                    }
                    true
                }
            },
        )
        .await;
        Self::Sentinel {
            nodes: vec![primary, replica],
            sentinels,
        }
    }

    /// Three primaries with `cluster-enabled yes`, joined by `redis-cli --cluster create`.
    pub async fn cluster(dir: &Path) -> Self {
        // The cluster bus listens on port + 10000, which must be free too.
        let ports = free_ports(3, 0);
        let mut nodes = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let sub = dir.join(format!("cluster-{i}"));
            let conf = sub.join("nodes.conf");
            std::fs::create_dir_all(&sub).expect("cluster node dir");
            nodes.push(
                RedisServer::start_with(
                    *port,
                    &sub,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        conf.to_str().expect("utf-8 path"),
                        "--cluster-node-timeout",
                        "2000",
                        // A primary emptied by a reshard stays a primary (by default it would
                        // become a replica of the node that took its slots).
                        "--cluster-allow-replica-migration",
                        "no",
                    ],
                )
                .await,
            );
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("running redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for(
            Duration::from_secs(30),
            "cluster_state:ok on every node",
            || {
                let ports = ports.clone();
                async move {
                    for p in ports {
                        let ok = resp::cmd(p, &["CLUSTER", "INFO"])
                            .await
                            .ok()
                            .and_then(|r| r.as_str().map(|s| s.contains("cluster_state:ok")))
                            .unwrap_or(false);
                        if !ok {
                            return false;
                        }
                    }
                    true
                }
            },
        )
        .await;
        Self::Cluster { nodes }
    }

    /// The `FACECRAFT_REDIS_*` settings for the api and workers; `FACECRAFT_REDIS_URL` is set
    /// too (it carries credentials in these modes; none here).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "FACECRAFT_REDIS_URL".to_owned(),
            "redis://127.0.0.1:1/".to_owned(),
        )];
        match self {
            Self::Sentinel { sentinels, .. } => {
                let list: Vec<String> = sentinels
                    .iter()
                    .map(|s| format!("127.0.0.1:{}", s.port))
                    .collect();
                env.push(("FACECRAFT_REDIS_SENTINELS".into(), list.join(",")));
                env.push(("FACECRAFT_REDIS_SENTINEL_MASTER".into(), MASTER_NAME.into()));
            }
            Self::Cluster { nodes } => {
                let list: Vec<String> = nodes
                    .iter()
                    .map(|n| format!("redis://127.0.0.1:{}", n.port))
                    .collect();
                env.push(("FACECRAFT_REDIS_CLUSTER_NODES".into(), list.join(",")));
            }
        }
        env
    }

    /// The same settings as command-line flags, for the in-process API (but the URL, which the
    /// lab passes itself).
    pub fn args(&self) -> Vec<String> {
        let env = self.env();
        flags(
            env.iter()
                .filter(|(k, _)| k != "FACECRAFT_REDIS_URL")
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    pub fn nodes_mut(&mut self) -> &mut Vec<RedisServer> {
        match self {
            Self::Sentinel { nodes, .. } | Self::Cluster { nodes } => nodes,
        }
    }

    pub fn sentinel_ports(&self) -> Vec<u16> {
        match self {
            Self::Sentinel { sentinels, .. } => sentinels.iter().map(|s| s.port).collect(),
            Self::Cluster { .. } => Vec::new(),
        }
    }

    /// The port of the primary as the Sentinels name it now.
    pub async fn current_primary(&self) -> Option<u16> {
        for p in self.sentinel_ports() {
            if let Ok(r) = resp::cmd(p, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]).await
            {
                if let Some(port) = r.strings().get(1).and_then(|s| s.parse().ok()) {
                    return Some(port);
                }
            }
        }
        None
    }

    pub fn kill_all(&mut self) {
        match self {
            Self::Sentinel { nodes, sentinels } => {
                for s in sentinels.iter_mut().chain(nodes.iter_mut()) {
                    s.kill9();
                }
            }
            Self::Cluster { nodes } => {
                for n in nodes {
                    n.kill9();
                }
            }
        }
    }
}

/// The cluster node (port) that holds `key`'s slot now, from `CLUSTER SHARDS`-free `CLUSTER
/// KEYSLOT` + `CLUSTER SLOTS` on `any_port`.
pub async fn slot_owner(any_port: u16, key: &str) -> Option<(u16, i64)> {
    let slot = resp::cmd(any_port, &["CLUSTER", "KEYSLOT", key])
        .await
        .ok()?
        .as_int()?;
    let slots = resp::cmd(any_port, &["CLUSTER", "SLOTS"]).await.ok()?;
    for range in slots.items() {
        let items = range.items();
        let (Some(lo), Some(hi)) = (
            items.first().and_then(resp::Reply::as_int),
            items.get(1).and_then(resp::Reply::as_int),
        ) else {
            continue;
        };
        if (lo..=hi).contains(&slot) {
            let port = items.get(2)?.items().get(1)?.as_int()?;
            return Some((u16::try_from(port).ok()?, slot));
        }
    }
    None
}

/// A node's cluster id, from `CLUSTER MYID`.
pub async fn node_id(port: u16) -> Option<String> {
    resp::cmd(port, &["CLUSTER", "MYID"])
        .await
        .ok()?
        .as_str()
        .map(str::to_owned)
}

/// `FACECRAFT_REDIS_SENTINELS=x` as `--redis-sentinels x`: the flag clap derives from each
/// variable's name, for the in-process API.
pub fn flags<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    env.into_iter()
        .flat_map(|(k, v)| {
            let flag = k
                .trim_start_matches("FACECRAFT_")
                .to_lowercase()
                .replace('_', "-");
            [format!("--{flag}"), v.to_owned()]
        })
        .collect()
}

/// Polls `check` every 100 ms until it holds; panics after `within`.
pub async fn wait_for<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "waited {within:?} for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
