//! Chaos test (issue 4, DESIGN §8): N jobs through the whole system while workers are killed,
//! Redis restarts and S3 goes away; at the end every accepted job has exactly one terminal state,
//! the expected one for its input, with its outputs stored once and decodable, and Redis holds
//! nothing that does not expire.
//!
//! The test starts its own redis-server (AOF, `appendfsync always`) and `weed mini`, the API
//! in-process and worker processes; see `chaos_support`. Two variants:
//! - `chaos_ci`: ~100 jobs, S3 stopped for 10 s; part of `cargo test`.
//! - `chaos_full` (ignored): 1000 jobs, S3 stopped for 30 s:
//!   `scripts/dev-stack run cargo test -p facecraft-worker --test chaos -- --ignored --nocapture`
//!
//! Knobs (env): FACECRAFT_CHAOS_JOBS (full run, default 1000), FACECRAFT_CHAOS_CI_JOBS (100),
//! FACECRAFT_CHAOS_S3_STOP_SECS (30 full / 10 CI), FACECRAFT_CHAOS_KILLS (kill -9 count, 10 full
//! / 4 CI), FACECRAFT_CHAOS_RATE (submissions per second, 4 full / 2.5 CI),
//! FACECRAFT_CHAOS_WORKERS (3), FACECRAFT_CHAOS_SETTLE_SECS (time allowed after the last
//! submission and fault for every job to end), FACECRAFT_CHAOS_KEEP=1 (keep data and logs; they
//! are always kept when the test fails).
#![allow(clippy::unwrap_used)]

mod chaos_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chaos_support::fleet::Fate;
use chaos_support::resp;
use chaos_support::{Lab, WorkerTuning};
use facecraft_contract::job::{JobId, JobStatus};
use futures::StreamExt;
use serde_json::{json, Value};

#[test]
fn chaos_ci() {
    run(Plan {
        name: "ci",
        jobs: env_num("FACECRAFT_CHAOS_CI_JOBS", 100),
        workers: env_num("FACECRAFT_CHAOS_WORKERS", 3),
        rate: env_num("FACECRAFT_CHAOS_RATE", 2.5),
        s3_stop: Duration::from_secs(env_num("FACECRAFT_CHAOS_S3_STOP_SECS", 10)),
        kills: env_num("FACECRAFT_CHAOS_KILLS", 4),
        settle: Duration::from_secs(env_num("FACECRAFT_CHAOS_SETTLE_SECS", 240)),
    });
}

#[test]
#[ignore = "1000 jobs, many minutes: scripts/dev-stack run cargo test -p facecraft-worker --test chaos -- --ignored --nocapture"]
fn chaos_full() {
    run(Plan {
        name: "full",
        jobs: env_num("FACECRAFT_CHAOS_JOBS", 1000),
        workers: env_num("FACECRAFT_CHAOS_WORKERS", 3),
        rate: env_num("FACECRAFT_CHAOS_RATE", 4.0),
        s3_stop: Duration::from_secs(env_num("FACECRAFT_CHAOS_S3_STOP_SECS", 30)),
        kills: env_num("FACECRAFT_CHAOS_KILLS", 10),
        settle: Duration::from_secs(env_num("FACECRAFT_CHAOS_SETTLE_SECS", 900)),
    });
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}=`{v}` is not a number")),
        Err(_) => default,
    }
}

struct Plan {
    name: &'static str,
    jobs: usize,
    workers: usize,
    /// Submissions per second, so faults hit while jobs are still coming in.
    rate: f64,
    s3_stop: Duration,
    /// Workers killed with -9 over the run.
    kills: usize,
    /// After the last submission and the last fault, how long jobs may take to end.
    settle: Duration,
}

const TUNING: WorkerTuning = WorkerTuning {
    concurrency: 2,
    lease_ms: 3_000,
    // Enough to ride out the 30 s S3 stop: retries back off to at most 3 s.
    max_retries: 60,
    max_deliveries: 5,
    drain_timeout_secs: 30,
    s3_timeout_secs: 3,
};

// ---------------------------------------------------------------------------------------------
// The jobs

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A photo uploaded through the API (multipart).
    GoodUpload,
    /// A photo already in S3, referenced by key.
    GoodRef,
    /// Bytes that are not an image, uploaded → `unsupported_format`.
    NotImage,
    /// A uniform grey picture, referenced → `no_face_detected`.
    NoFace,
    /// A key that does not exist → `input_not_found`.
    Missing,
}

impl Kind {
    fn of(i: usize) -> Self {
        match i % 10 {
            0..=2 => Self::GoodUpload,
            3..=6 => Self::GoodRef,
            7 => Self::NotImage,
            8 => Self::NoFace,
            _ => Self::Missing,
        }
    }

    fn is_good(self) -> bool {
        matches!(self, Self::GoodUpload | Self::GoodRef)
    }

    /// The failure code of a bad input.
    fn expected_code(self) -> Option<&'static str> {
        match self {
            Self::GoodUpload | Self::GoodRef => None,
            Self::NotImage => Some("unsupported_format"),
            Self::NoFace => Some("no_face_detected"),
            Self::Missing => Some("input_not_found"),
        }
    }
}

struct Spec {
    kind: Kind,
    params: Value,
    formats: Vec<&'static str>,
    size: (u32, u32),
}

/// Deterministic mix: cheap pipeline settings (small sizes, background removal on one good job
/// in eight) so a thousand jobs fit on two cores.
fn specs(n: usize) -> Vec<Spec> {
    (0..n)
        .map(|i| {
            let kind = Kind::of(i);
            let round = i / 10;
            let formats: Vec<&'static str> = match round % 6 {
                0 => vec!["png"],
                1 => vec!["jpg"],
                _ => vec!["png", "jpg"],
            };
            let size = (
                [96, 128, 160][round % 3],
                [96, 128, 160, 192][(round / 3) % 4],
            );
            let face_margin = [0.3, 0.4, 0.5][i % 3];
            let params = json!({
                "width": size.0,
                "height": size.1,
                "formats": formats,
                "remove_background": kind.is_good() && round % 8 == 3,
                "face_margin": face_margin,
            });
            Spec {
                kind,
                params,
                formats,
                size,
            }
        })
        .collect()
}

struct Fixtures {
    jpg: Vec<u8>,
    not_image: Vec<u8>,
}

async fn fixtures(lab: &Lab) -> Fixtures {
    let png = lab.put_photo_and_grey().await;
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    let mut jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 90)
        .encode_image(&img)
        .unwrap();
    lab.put("inputs/astronaut.jpg", jpg.clone()).await;
    Fixtures {
        jpg,
        not_image: b"%PDF-1.4\n% not an image at all\n".to_vec(),
    }
}

// ---------------------------------------------------------------------------------------------
// Book-keeping shared by the submitter, the poller and the fault injector

#[derive(Default, Clone)]
struct Record {
    id: Option<JobId>,
    /// The accepting answer was an idempotent replay (200): an earlier try had gone through.
    replayed: bool,
    last_state: Option<String>,
    /// State and error code the first time the poller saw the job ended.
    first_terminal: Option<(String, Option<String>)>,
}

#[derive(Default)]
struct Book {
    recs: Vec<Record>,
    accepted: usize,
    /// 503 answers per code (the submitter retried each).
    unavailable: BTreeMap<String, usize>,
    /// Other non-2xx answers and transport errors, retried or not.
    odd_answers: Vec<String>,
    /// Jobs the submitter gave up on.
    not_accepted: Vec<String>,
    /// Accepted only as an idempotent replay: an earlier try that was answered with an error
    /// had in fact enqueued the job. With the answers before it.
    replays: Vec<String>,
    events: Vec<String>,
    drained: Option<String>,
}

impl Book {
    fn terminal(&self) -> usize {
        self.recs
            .iter()
            .filter(|r| r.first_terminal.is_some())
            .count()
    }

    fn count_state(&self, s: &str) -> usize {
        self.recs
            .iter()
            .filter(|r| r.first_terminal.is_none() && r.last_state.as_deref() == Some(s))
            .count()
    }
}

struct Run<'a> {
    lab: &'a Lab,
    plan: &'a Plan,
    specs: Vec<Spec>,
    book: Mutex<Book>,
    t0: Instant,
    tag: String,
    submitted_all: AtomicBool,
    faults_done: AtomicBool,
}

impl Run<'_> {
    fn say(&self, msg: &str) {
        println!("chaos [{:>6.1}s] {msg}", self.t0.elapsed().as_secs_f64());
    }

    fn event(&self, msg: String) {
        self.say(&msg);
        let at = self.t0.elapsed().as_secs_f64();
        self.book
            .lock()
            .unwrap()
            .events
            .push(format!("at {at:.1} s {msg}"));
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Submission: paced, retried on 503 with the same idempotency key, so an enqueue whose answer
// was lost is not made twice.

async fn submit_all(run: &Run<'_>, fx: &Fixtures) {
    futures::stream::iter(0..run.specs.len())
        .map(|i| async move {
            let due = run.t0 + Duration::from_secs_f64(i as f64 / run.plan.rate);
            tokio::time::sleep_until(due.into()).await;
            submit_one(run, fx, i).await;
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    run.submitted_all.store(true, Ordering::SeqCst);
    let b = run.book();
    run.say(&format!(
        "submission done: {} accepted, {} given up",
        b.accepted,
        b.not_accepted.len()
    ));
}

async fn submit_one(run: &Run<'_>, fx: &Fixtures, i: usize) {
    let spec = &run.specs[i];
    let idem = format!("{}-{i}", run.tag);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut wait = Duration::from_millis(200);
    let mut refusals: Vec<String> = Vec::new();
    loop {
        let req = match spec.kind {
            Kind::GoodUpload | Kind::NotImage => {
                let (bytes, name) = if spec.kind == Kind::NotImage {
                    (fx.not_image.clone(), "doc.png")
                } else {
                    (fx.jpg.clone(), "me.jpg")
                };
                let form = reqwest::multipart::Form::new()
                    .part(
                        "image",
                        reqwest::multipart::Part::bytes(bytes).file_name(name),
                    )
                    .text("params", spec.params.to_string())
                    .text("idempotency_key", idem.clone());
                run.lab.http.post(run.lab.url("/v1/jobs")).multipart(form)
            }
            Kind::GoodRef | Kind::NoFace | Kind::Missing => {
                let key = match spec.kind {
                    Kind::NoFace => "inputs/grey.png".to_owned(),
                    Kind::Missing => format!("inputs/missing-{i}.png"),
                    _ if i.is_multiple_of(2) => "inputs/astronaut.png".to_owned(),
                    _ => "inputs/astronaut.jpg".to_owned(),
                };
                run.lab.http.post(run.lab.url("/v1/jobs")).json(&json!({
                    "input": {"key": key},
                    "params": spec.params,
                    "idempotency_key": idem,
                }))
            }
        };
        let outcome = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                Ok((status, body))
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok((code @ (200 | 202), body)) => {
                let id = body["id"]
                    .as_str()
                    .and_then(JobId::parse)
                    .unwrap_or_else(|| panic!("job {i}: {code} without an id: {body}"));
                let mut b = run.book();
                b.accepted += 1;
                let r = &mut b.recs[i];
                r.id = Some(id);
                r.replayed = code == 200;
                r.last_state = body["state"].as_str().map(str::to_owned);
                if code == 200 {
                    b.replays
                        .push(format!("job {i} ({id}) after {}", refusals.join(", ")));
                }
                return;
            }
            Ok((503, body)) => {
                let code = body["code"].as_str().unwrap_or("?").to_owned();
                refusals.push(format!(
                    "503 {code} at {:.1} s",
                    run.t0.elapsed().as_secs_f64()
                ));
                *run.book().unavailable.entry(code).or_default() += 1;
            }
            Ok((status, body)) => {
                let msg = format!("job {i} ({:?}): HTTP {status} {body}", spec.kind);
                refusals.push(format!(
                    "{status} {} at {:.1} s",
                    body["code"].as_str().unwrap_or("?"),
                    run.t0.elapsed().as_secs_f64()
                ));
                run.say(&msg);
                run.book().odd_answers.push(msg.clone());
                if status < 500 {
                    run.book().not_accepted.push(msg);
                    return;
                }
            }
            Err(e) => {
                let msg = format!("job {i} ({:?}): {e}", spec.kind);
                refusals.push(format!("{e} at {:.1} s", run.t0.elapsed().as_secs_f64()));
                run.book().odd_answers.push(msg);
            }
        }
        if Instant::now() > deadline {
            run.book()
                .not_accepted
                .push(format!("job {i}: not accepted within 300 s"));
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

// ---------------------------------------------------------------------------------------------
// Watching: the test's own queue handle reads every unfinished job's record, so it sees each
// terminal state as it happens and can tell if one changes later.

async fn poll_round(run: &Run<'_>) {
    let open: Vec<(usize, JobId)> = run
        .book()
        .recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.first_terminal.is_none())
        .filter_map(|(i, r)| r.id.map(|id| (i, id)))
        .collect();
    let seen: Vec<(usize, Option<JobStatus>)> = futures::stream::iter(open)
        .map(|(i, id)| async move { (i, run.lab.queue.status(&id, None).await.ok().flatten()) })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut b = run.book();
    for (i, s) in seen {
        if let Some(s) = s {
            let r = &mut b.recs[i];
            if s.state.is_terminal() {
                r.first_terminal = Some((
                    s.state.as_str().to_owned(),
                    s.error.map(|e| e.code.as_str().to_owned()),
                ));
            }
            r.last_state = Some(s.state.as_str().to_owned());
        }
    }
}

/// Polls until every job ended after submission and faults are done, or the settle time ran out.
async fn watch(run: &Run<'_>) {
    let mut last_print = Instant::now();
    let mut settle_deadline: Option<Instant> = None;
    loop {
        poll_round(run).await;
        let (accepted, terminal, running, queued) = {
            let b = run.book();
            (
                b.accepted,
                b.terminal(),
                b.count_state("running"),
                b.count_state("queued"),
            )
        };
        if last_print.elapsed() >= Duration::from_secs(5) {
            last_print = Instant::now();
            let (alive, started) = {
                let mut f = run.lab.fleet.lock().unwrap();
                (f.running().len(), f.workers.len())
            };
            run.say(&format!(
                "accepted {accepted}/{}, terminal {terminal}, running {running}, queued {queued}; workers alive {alive} (started {started})",
                run.specs.len()
            ));
        }
        let inputs_done =
            run.submitted_all.load(Ordering::SeqCst) && run.faults_done.load(Ordering::SeqCst);
        if inputs_done {
            if terminal == accepted {
                return;
            }
            let d = *settle_deadline.get_or_insert_with(|| Instant::now() + run.plan.settle);
            if Instant::now() > d {
                run.say(&format!(
                    "settle time of {:?} is over with {} jobs not ended",
                    run.plan.settle,
                    accepted - terminal
                ));
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

#[derive(Debug, Clone, Copy)]
enum Fault {
    RedisRestart { graceful: bool },
    DrainWorker,
    S3Stop,
}

/// Infrastructure faults, one after another, each once the given fraction of jobs is accepted.
/// Worker kills run alongside (see [`kill_workers`]), so some land inside an outage.
const TIMELINE: [(f64, Fault); 4] = [
    (0.15, Fault::RedisRestart { graceful: true }),
    (0.30, Fault::DrainWorker),
    (0.45, Fault::RedisRestart { graceful: false }),
    (0.58, Fault::S3Stop),
];

async fn inject_faults(run: &Run<'_>) {
    tokio::join!(infra_faults(run), kill_workers(run));
    run.faults_done.store(true, Ordering::SeqCst);
}

/// Waits until `frac` of the jobs are accepted (or submission is over).
async fn until_accepted(run: &Run<'_>, frac: f64) {
    let n = run.specs.len() as f64;
    while (run.book().accepted as f64) < frac * n && !run.submitted_all.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn running_on(job: Option<JobId>) -> String {
    job.map_or("no job seen running on it".to_owned(), |j| {
        format!("running {j}")
    })
}

async fn infra_faults(run: &Run<'_>) {
    for (frac, fault) in TIMELINE {
        until_accepted(run, frac).await;
        match fault {
            Fault::DrainWorker => {
                let (victim, job, replacement) = loop {
                    let (victim, job) = pick_busy_worker(run, true).await;
                    let mut f = run.lab.fleet.lock().unwrap();
                    let w = f.get_mut(&victim).unwrap();
                    // A concurrent kill may have taken it meanwhile.
                    if w.is_running() {
                        w.sigterm();
                        let replacement = f.spawn();
                        break (victim, job, replacement);
                    }
                };
                run.book().drained = Some(victim.clone());
                run.event(format!(
                    "SIGTERM {victim} ({}); started {replacement}",
                    running_on(job)
                ));
            }
            Fault::RedisRestart { graceful } => {
                let mut guard = run.lab.redis.lock().await;
                let redis = guard
                    .as_mut()
                    .expect("the chaos lab runs on one redis-server");
                let t = Instant::now();
                if graceful {
                    redis.stop_graceful().await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                } else {
                    redis.kill9();
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                redis.spawn().await;
                run.event(format!(
                    "redis-server {}, back after {:.1} s",
                    if graceful {
                        "stopped with SIGTERM"
                    } else {
                        "killed with -9"
                    },
                    t.elapsed().as_secs_f64()
                ));
            }
            Fault::S3Stop => {
                let mut weed = run.lab.weed.lock().await;
                let t = Instant::now();
                weed.stop().await;
                run.say(&format!(
                    "S3 (weed mini) stopped; restarting in {:?}",
                    run.plan.s3_stop
                ));
                tokio::time::sleep(run.plan.s3_stop).await;
                weed.spawn();
                let ready = weed.wait_ready(&run.lab.store, &run.lab.bucket).await;
                run.event(format!(
                    "S3 stopped for {:?}, serving again after {:.1} s in all (restart took {:.1} s)",
                    run.plan.s3_stop,
                    t.elapsed().as_secs_f64(),
                    ready.as_secs_f64()
                ));
            }
        }
        // Let the system breathe between faults.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `kill -9` a busy worker `plan.kills` times, evenly over the submissions, and start a
/// replacement each time.
async fn kill_workers(run: &Run<'_>) {
    let kills = run.plan.kills;
    for k in 0..kills {
        until_accepted(run, (k as f64 + 0.5) / kills as f64).await;
        let (victim, job, replacement) = loop {
            let (victim, job) = pick_busy_worker(run, false).await;
            let mut f = run.lab.fleet.lock().unwrap();
            let w = f.get_mut(&victim).unwrap();
            // The drain may have taken it meanwhile.
            if w.is_running() {
                w.kill9();
                let replacement = f.spawn();
                break (victim, job, replacement);
            }
        };
        run.event(format!(
            "kill -9 {victim} ({}); started {replacement}",
            running_on(job)
        ));
    }
}

/// A running worker in the middle of a job, read from the status hashes at this moment; with
/// `slow`, one whose job removes the background and has not reached that stage yet, so a
/// signal surely lands mid-job. Waits up to 20 s for one, else takes any running worker.
async fn pick_busy_worker(run: &Run<'_>, slow: bool) -> (String, Option<JobId>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let open: Vec<(usize, JobId)> = run
            .book()
            .recs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.first_terminal.is_none())
            .filter_map(|(i, r)| r.id.map(|id| (i, id)))
            .collect();
        let alive = run.lab.fleet.lock().unwrap().running();
        let cmds: Vec<Vec<String>> = open
            .iter()
            .map(|(_, id)| {
                [
                    "HMGET",
                    &run.lab.queue.keys().job(id),
                    "state",
                    "worker",
                    "stage",
                ]
                .map(str::to_owned)
                .to_vec()
            })
            .collect();
        let replies = resp::pipeline(run.lab.redis_port, &cmds)
            .await
            .unwrap_or_default();
        let mut any = None;
        for ((i, id), reply) in open.into_iter().zip(replies) {
            let v = reply.strings();
            let [state, worker, stage] = &v[..] else {
                continue;
            };
            if state != "running" || !alive.contains(worker) {
                continue;
            }
            let early = matches!(
                stage.as_str(),
                "starting" | "fetch" | "decode" | "detect" | "landmarks" | "align" | "crop"
            );
            let slow_job = run.specs[i].params["remove_background"] == true;
            if !slow || (early && slow_job) {
                return (worker.clone(), Some(id));
            }
            any.get_or_insert((worker.clone(), id));
        }
        if Instant::now() > deadline {
            if let Some((w, id)) = any {
                return (w, Some(id));
            }
            let name = alive
                .get(fastrand::usize(..alive.len().max(1)))
                .cloned()
                .expect("no worker is running");
            return (name, None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The run

fn run(plan: Plan) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(Box::pin(chaos(plan)));
}

async fn chaos(plan: Plan) {
    let started = Instant::now();
    let mut lab = Lab::start(&TUNING).await;
    println!(
        "chaos ({}): {} jobs, {} workers, {:.1} submissions/s, S3 stop {:?}; data and logs in {}",
        plan.name,
        plan.jobs,
        plan.workers,
        plan.rate,
        plan.s3_stop,
        lab.dir.display()
    );
    let fx = fixtures(&lab).await;
    {
        let mut f = lab.fleet.lock().unwrap();
        for _ in 0..plan.workers {
            f.spawn();
        }
    }
    lab.wait_workers_started().await;

    let specs = specs(plan.jobs);
    let run = Run {
        lab: &lab,
        plan: &plan,
        book: Mutex::new(Book {
            recs: vec![Record::default(); specs.len()],
            ..Book::default()
        }),
        specs,
        t0: Instant::now(),
        tag: format!("chaos-{}", uuid::Uuid::now_v7().simple()),
        submitted_all: AtomicBool::new(false),
        faults_done: AtomicBool::new(false),
    };
    tokio::join!(submit_all(&run, &fx), inject_faults(&run), watch(&run));
    let processing = run.t0.elapsed();

    let report = check(&run).await;
    let checks = run.t0.elapsed() - processing;
    println!("{}", report.figures);
    for line in &report.details {
        println!("chaos: {line}");
    }
    println!(
        "chaos: runtime {:.0} s (start-up {:.0} s, jobs {:.0} s, checks {:.0} s)",
        started.elapsed().as_secs_f64(),
        (run.t0 - started).as_secs_f64(),
        processing.as_secs_f64(),
        checks.as_secs_f64()
    );
    drop(run);
    if report.problems.is_empty() {
        lab.passed = true;
    } else {
        panic!(
            "chaos: {} problem(s):\n{}",
            report.problems.len(),
            report.problems.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Checks and figures

struct Report {
    figures: String,
    details: Vec<String>,
    problems: Vec<String>,
}

/// What the worker logs say (JSON lines; a killed worker's last line may be cut).
#[derive(Default)]
struct LogFacts {
    /// Completed runs per job ("job succeeded" lines): more than one means outputs were
    /// written again by a second delivery.
    succeeded_runs: HashMap<String, usize>,
    takeovers: usize,
    transient_retries: usize,
    /// ERROR lines by message.
    errors: BTreeMap<String, usize>,
}

fn read_logs(lab: &Lab) -> LogFacts {
    let mut facts = LogFacts::default();
    let f = lab.fleet.lock().unwrap();
    for w in &f.workers {
        for line in w.log_text().lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let msg = v["fields"]["message"].as_str().unwrap_or_default();
            let job = v["span"]["job_id"].as_str().unwrap_or_default();
            match msg {
                "job succeeded" => *facts.succeeded_runs.entry(job.to_owned()).or_default() += 1,
                "took over jobs whose lease expired" => {
                    facts.takeovers += v["fields"]["entries"].as_u64().unwrap_or(1) as usize;
                }
                "transient failure: retrying" => facts.transient_retries += 1,
                _ => {}
            }
            if v["level"] == "ERROR" {
                *facts.errors.entry(msg.to_owned()).or_default() += 1;
            }
        }
    }
    facts
}

/// Lines of every worker log that mention `needle`, for evidence.
fn log_lines(lab: &Lab, needle: &str, max: usize) -> Vec<String> {
    let f = lab.fleet.lock().unwrap();
    let mut out = Vec::new();
    for w in &f.workers {
        for line in w.log_text().lines().filter(|l| l.contains(needle)) {
            if out.len() < max {
                out.push(format!("  {}: {line}", w.name));
            }
        }
    }
    out
}

async fn api_status(lab: &Lab, id: &JobId) -> (u16, Value) {
    for _ in 0..20 {
        if let Ok(resp) = lab
            .http
            .get(lab.url(&format!("/v1/jobs/{id}")))
            .send()
            .await
        {
            let code = resp.status().as_u16();
            if code != 503 {
                return (code, resp.json().await.unwrap_or(Value::Null));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the API did not answer for job {id}");
}

/// Problems with one succeeded job's outputs, and how many extra objects lie under its prefix.
async fn check_outputs(lab: &Lab, spec: &Spec, id: &JobId, status: &Value) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let prefix = format!("results/{id}/");
    let want: BTreeSet<String> = spec
        .formats
        .iter()
        .map(|f| format!("{prefix}portrait.{f}"))
        .collect();
    let listed: BTreeSet<String> = lab
        .store
        .list(&lab.bucket, &prefix, 100)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let extra = listed.difference(&want).count();
    if extra > 0 {
        problems.push(format!(
            "job {id}: unexpected objects {listed:?}, want {want:?}"
        ));
    }
    let outputs = status["result"]["outputs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let recorded: BTreeSet<String> = outputs
        .iter()
        .filter_map(|o| o["key"].as_str().map(str::to_owned))
        .collect();
    if recorded != want {
        problems.push(format!(
            "job {id}: result lists {recorded:?}, want {want:?}"
        ));
    }
    for o in &outputs {
        let key = o["key"].as_str().unwrap_or_default();
        match lab.store.get(&lab.obj(key), 50_000_000).await {
            Ok(bytes) => {
                if Some(bytes.len() as u64) != o["bytes"].as_u64() {
                    problems.push(format!(
                        "job {id}: {key} is {} bytes, the result says {}",
                        bytes.len(),
                        o["bytes"]
                    ));
                }
                match image::load_from_memory(&bytes) {
                    Ok(img) if (img.width(), img.height()) == spec.size => {}
                    Ok(img) => problems.push(format!(
                        "job {id}: {key} is {}×{}, want {:?}",
                        img.width(),
                        img.height(),
                        spec.size
                    )),
                    Err(e) => problems.push(format!("job {id}: {key} does not decode: {e}")),
                }
            }
            Err(e) => problems.push(format!("job {id}: output {key} missing: {e}")),
        }
    }
    (problems, extra)
}

enum Verdict {
    Lost,
    Stuck(String),
    Ended {
        state: String,
        code: Option<String>,
        attempts: u64,
        problems: Vec<String>,
        extra_objects: usize,
        stray_objects: usize,
    },
}

async fn check_job(run: &Run<'_>, i: usize, id: JobId) -> Verdict {
    let lab = run.lab;
    let spec = &run.specs[i];
    let (http, status) = api_status(lab, &id).await;
    if http == 404 {
        return Verdict::Lost;
    }
    assert_eq!(http, 200, "job {id}: {status}");
    let state = status["state"].as_str().unwrap_or_default().to_owned();
    if !matches!(
        state.as_str(),
        "succeeded" | "failed" | "dead" | "cancelled"
    ) {
        return Verdict::Stuck(state);
    }
    let code = status["error"]["code"].as_str().map(str::to_owned);
    let mut problems = Vec::new();
    let first = run.book().recs[i].first_terminal.clone();
    if let Some((s, c)) = &first {
        if *s != state || *c != code {
            problems.push(format!(
                "job {id}: ended {s} {c:?}, later reads {state} {code:?}"
            ));
        }
    }
    let (mut extra_objects, mut stray_objects) = (0, 0);
    match (spec.kind.expected_code(), state.as_str()) {
        (None, "succeeded") => {
            let (p, extra) = check_outputs(lab, spec, &id, &status).await;
            problems.extend(p);
            extra_objects = extra;
        }
        (Some(want), "failed") if code.as_deref() == Some(want) => {
            let left = lab
                .store
                .list(&lab.bucket, &format!("results/{id}/"), 100)
                .await
                .unwrap();
            stray_objects = left.len();
            if !left.is_empty() {
                problems.push(format!("job {id}: failed but left outputs {left:?}"));
            }
        }
        // Reported with the figures; not an input's fault but not a loss either.
        (_, "dead") => {}
        _ => problems.push(format!(
            "job {id} ({:?}): ended {state} {code:?}, want {}",
            spec.kind,
            spec.kind
                .expected_code()
                .map_or("succeeded".to_owned(), |c| format!("failed {c}"))
        )),
    }
    Verdict::Ended {
        state,
        code,
        attempts: status["attempts"].as_u64().unwrap_or(0),
        problems,
        extra_objects,
        stray_objects,
    }
}

async fn check(run: &Run<'_>) -> Report {
    let lab = run.lab;
    let mut problems: Vec<String> = Vec::new();
    let mut details: Vec<String> = Vec::new();

    // The drained worker must have finished its jobs and exited 0 within the drain timeout.
    let drained = run.book().drained.clone();
    let mut drain_line = "no worker drained".to_owned();
    if let Some(name) = drained {
        let deadline = Instant::now() + Duration::from_secs(TUNING.drain_timeout_secs + 30);
        loop {
            let fate = {
                let mut f = lab.fleet.lock().unwrap();
                f.poll();
                f.get_mut(&name).map(|w| (w.fate.clone(), w.log_text()))
            };
            let Some((fate, log)) = fate else { break };
            match fate {
                Fate::Terminated {
                    exit: Some((st, after)),
                    ..
                } => {
                    let draining = log
                        .lines()
                        .find(|l| l.contains("\"draining\""))
                        .and_then(|l| serde_json::from_str::<Value>(l).ok())
                        .and_then(|v| v["fields"]["jobs"].as_u64());
                    drain_line = format!(
                        "{name} got SIGTERM and exited {st} after {:.1} s, draining {} job(s)",
                        after.as_secs_f64(),
                        draining.unwrap_or(0)
                    );
                    if !st.success() || !log.contains("worker stopped") {
                        problems.push(format!("drained worker {name} exited {st}:\n{log}"));
                    }
                    break;
                }
                _ if Instant::now() > deadline => {
                    problems.push(format!(
                        "worker {name} did not exit within the drain timeout after SIGTERM"
                    ));
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    // Workers that died on their own are crashes.
    let (started, killed, crashed) = {
        let mut f = lab.fleet.lock().unwrap();
        f.poll();
        let crashed: Vec<String> = f
            .workers
            .iter()
            .filter_map(|w| match &w.fate {
                Fate::Exited(st) => Some(format!("{} exited {st}", w.name)),
                _ => None,
            })
            .collect();
        let killed = f.workers.iter().filter(|w| w.fate == Fate::Killed).count();
        (f.workers.len(), killed, crashed)
    };
    for c in &crashed {
        problems.push(format!("worker crashed: {c}"));
    }

    // Every accepted job, through the API.
    let book_recs = run.book().recs.clone();
    let verdicts: Vec<(usize, JobId, Verdict)> = futures::stream::iter(
        book_recs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.id.map(|id| (i, id))),
    )
    .map(|(i, id)| async move { (i, id, check_job(run, i, id).await) })
    .buffer_unordered(8)
    .collect()
    .await;

    let accepted = verdicts.len();
    let (mut lost, mut stuck, mut terminal) = (Vec::new(), Vec::new(), 0);
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut attempts: BTreeMap<u64, usize> = BTreeMap::new();
    let (mut extra_objects, mut stray_objects) = (0, 0);
    let mut dead = Vec::new();
    for (i, id, v) in &verdicts {
        match v {
            Verdict::Lost => lost.push(*id),
            Verdict::Stuck(s) => stuck.push((*id, s.clone())),
            Verdict::Ended {
                state,
                code,
                attempts: a,
                problems: p,
                extra_objects: e,
                stray_objects: s,
            } => {
                terminal += 1;
                *by_state.entry(state.clone()).or_default() += 1;
                if let Some(c) = code {
                    if state == "failed" {
                        *codes.entry(c.clone()).or_default() += 1;
                    }
                }
                *attempts.entry(*a).or_default() += 1;
                extra_objects += e;
                stray_objects += s;
                problems.extend(p.iter().cloned());
                if state == "dead" {
                    dead.push(format!(
                        "job {id} ({:?}) dead with {code:?} after {a} attempts",
                        run.specs[*i].kind
                    ));
                }
            }
        }
    }
    let not_accepted = run.book().not_accepted.clone();
    for n in &not_accepted {
        problems.push(format!("submission given up: {n}"));
    }
    for id in &lost {
        problems.push(format!(
            "LOST: job {id} was accepted but its record is gone; logs:\n{}",
            log_lines(lab, &id.to_string(), 20).join("\n")
        ));
    }
    for (id, s) in &stuck {
        let hash = lab
            .redis_cmd(&["HGETALL", &lab.queue.keys().job(id)])
            .await
            .map(|r| format!("{:?}", r.strings()))
            .unwrap_or_else(|e| e);
        problems.push(format!(
            "STUCK: job {id} is still {s}: {hash}\n{}",
            log_lines(lab, &id.to_string(), 20).join("\n")
        ));
    }

    // Redis: nothing waiting, nothing pending, every record expires.
    let stats = lab.queue.stats().await.unwrap();
    let keys = lab
        .redis_cmd(&["KEYS", &format!("{}:*", lab.queue.keys().tag())])
        .await
        .unwrap()
        .strings();
    // Keys meant to live as long as the queue: the streams (capped) and the finished-job
    // counters of `/status` (one hash of three integers).
    let stream_keys = [
        lab.queue.keys().stream(),
        lab.queue.keys().dead(),
        lab.queue.keys().finished(),
    ];
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut no_ttl = Vec::new();
    for k in &keys {
        let rest = k
            .strip_prefix(&format!("{}:", lab.queue.keys().tag()))
            .unwrap_or(k);
        let kind = rest.split(':').next().unwrap_or(rest);
        let kind = match kind {
            "job" => "job",
            "idem" => "idem",
            "jobs" => "stream",
            "dead" => "dead stream",
            "delayed" => "delayed",
            "stats" => "stats",
            "worker" | "workers" => "worker announcements",
            _ => "other",
        };
        *kinds.entry(kind).or_default() += 1;
        if stream_keys.contains(k) {
            continue;
        }
        let ttl = lab
            .redis_cmd(&["PTTL", k])
            .await
            .ok()
            .and_then(|r| r.as_int())
            .unwrap_or(-3);
        if ttl < 0 {
            no_ttl.push(k.clone());
        }
    }
    let memory = lab
        .redis_cmd(&["INFO", "memory"])
        .await
        .ok()
        .and_then(|r| r.as_str().map(str::to_owned))
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("used_memory_human:")
                    .map(|s| s.trim().to_owned())
            })
        })
        .unwrap_or_default();
    if stats.stream_len != 0 || stats.pending != 0 || stats.delayed != 0 {
        problems.push(format!("queue not empty at the end: {stats:?}"));
    }
    // One status hash and one idempotency key per job, the streams and the counters: nothing
    // else piles up. Workers' announcements expire 30 s after their worker stopped (the TTL
    // check below holds them to that), so killed workers may still have theirs.
    let announcements = kinds.get("worker announcements").copied().unwrap_or(0);
    if keys.len() - announcements > 2 * accepted + 3 {
        problems.push(format!(
            "{} keys for {accepted} jobs: {kinds:?}",
            keys.len()
        ));
    }
    if !no_ttl.is_empty() {
        problems.push(format!(
            "{} keys never expire: {:?}",
            no_ttl.len(),
            &no_ttl[..no_ttl.len().min(10)]
        ));
    }
    if stats.dead as usize != dead.len() {
        problems.push(format!(
            "the dead stream holds {} entries, {} jobs are dead",
            stats.dead,
            dead.len()
        ));
    }
    if extra_objects > 0 {
        problems.push(format!("{extra_objects} duplicate output objects"));
    }
    if stray_objects > 0 {
        problems.push(format!("{stray_objects} outputs of failed jobs"));
    }

    let facts = read_logs(lab);
    let rewritten = facts.succeeded_runs.values().filter(|n| **n > 1).count();
    let mut never_logged = 0;
    for (_, id, v) in &verdicts {
        if let Verdict::Ended { state, .. } = v {
            if state == "succeeded" && !facts.succeeded_runs.contains_key(&id.to_string()) {
                never_logged += 1;
            }
        }
    }
    if never_logged > 0 {
        problems.push(format!(
            "{never_logged} jobs are succeeded without a worker logging it"
        ));
    }

    let b = run.book();
    let succeeded = by_state.get("succeeded").copied().unwrap_or(0);
    let failed = by_state.get("failed").copied().unwrap_or(0);
    let figures = format!(
        "chaos: accepted {accepted}, terminal {terminal} (succeeded {succeeded}, failed {failed}, dead {}), lost {}, stuck {}, duplicate outputs {extra_objects}, stream_len {}, pending {}, keys {} ({})",
        dead.len(),
        lost.len(),
        stuck.len(),
        stats.stream_len,
        stats.pending,
        keys.len(),
        if no_ttl.is_empty() {
            "all with TTL but the streams".to_owned()
        } else {
            format!("{} without TTL", no_ttl.len())
        }
    );
    details.push(format!(
        "failed by input: {}",
        codes
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    details.extend(dead.iter().cloned());
    details.push(format!(
        "redis: keys {:?}, delayed {}, dead stream {}, used memory {memory}",
        kinds, stats.delayed, stats.dead
    ));
    details.push(format!("faults: {}", b.events.join("; ")));
    details.push(format!(
        "workers: {started} started, {killed} killed with -9, {} crashed; drain: {drain_line}",
        crashed.len()
    ));
    details.push(format!(
        "submission: 503 answers retried {:?}, idempotent replays {}, other errors {}",
        b.unavailable,
        b.recs.iter().filter(|r| r.replayed).count(),
        b.odd_answers.len()
    ));
    for o in b.odd_answers.iter().take(10) {
        details.push(format!("  {o}"));
    }
    for r in b.replays.iter().take(10) {
        details.push(format!("  replay: {r}"));
    }
    details.push(format!(
        "delivery: attempts per job {:?}, leases taken over {}, transient retries {}, jobs whose outputs were written by more than one run {rewritten} (same keys, harmless)",
        attempts, facts.takeovers, facts.transient_retries
    ));
    if !facts.errors.is_empty() {
        details.push(format!("worker ERROR lines: {:?}", facts.errors));
    }
    Report {
        figures,
        details,
        problems,
    }
}
