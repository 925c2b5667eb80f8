//! Worker processes of the chaos test: started, killed, drained and replaced by name; every
//! one is killed by pid when the fleet is dropped (also on panic).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use super::servers::signal;

/// How a worker's life ended, as far as the test is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Running,
    /// The test sent SIGKILL.
    Killed,
    /// The test sent SIGTERM at this instant; `exit` once it is gone.
    Terminated {
        at: Instant,
        exit: Option<(ExitStatus, std::time::Duration)>,
    },
    /// It exited without being asked to: a crash.
    Exited(ExitStatus),
}

pub struct Worker {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
    pub fate: Fate,
}

impl Worker {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.fate == Fate::Running
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Notices exits: a running worker that is gone crashed; a terminated one finished draining.
    pub fn poll(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            self.fate = match std::mem::replace(&mut self.fate, Fate::Running) {
                Fate::Terminated { at, .. } => Fate::Terminated {
                    at,
                    exit: Some((status, at.elapsed())),
                },
                Fate::Killed => Fate::Killed,
                _ => Fate::Exited(status),
            };
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if self.fate == Fate::Running {
                self.fate = Fate::Killed;
            }
        }
    }

    pub fn sigterm(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, "TERM");
            self.fate = Fate::Terminated {
                at: Instant::now(),
                exit: None,
            };
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// All workers ever started in one run, alive or not (their logs are evidence).
pub struct Fleet {
    dir: PathBuf,
    env: Vec<(String, String)>,
    pub workers: Vec<Worker>,
}

impl Fleet {
    pub fn new(dir: &Path, env: Vec<(String, String)>) -> Self {
        Self {
            dir: dir.to_owned(),
            env,
            workers: Vec::new(),
        }
    }

    pub fn spawn(&mut self) -> String {
        let name = format!("chaos-w{}", self.workers.len() + 1);
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("worker log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_facecraft-worker"));
        cmd.arg("serve")
            .env_clear()
            .envs(
                ["PATH", "HOME", "LD_LIBRARY_PATH", "TMPDIR"]
                    .iter()
                    .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
            )
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("FACECRAFT_WORKER_NAME", &name)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("worker log"))
            .stderr(file);
        let child = cmd.spawn().expect("starting facecraft-worker");
        self.workers.push(Worker {
            name: name.clone(),
            log,
            child: Some(child),
            fate: Fate::Running,
        });
        name
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Worker> {
        self.workers.iter_mut().find(|w| w.name == name)
    }

    pub fn running(&mut self) -> Vec<String> {
        self.poll();
        self.workers
            .iter()
            .filter(|w| w.is_running())
            .map(|w| w.name.clone())
            .collect()
    }

    pub fn poll(&mut self) {
        for w in &mut self.workers {
            w.poll();
        }
    }

    pub fn kill_all(&mut self) {
        for w in &mut self.workers {
            w.kill9();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.kill_all();
    }
}
