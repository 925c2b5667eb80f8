//! No-op jobs per second through the real queue code (`src/queue/`) on a local Redis, next to
//! the bare stream commands it is built from, measured in the same run (issue 11, "Performance").
//! The jobs are the smallest the contract allows; nothing ever processes them.
//!
//!   scripts/dev-stack run cargo bench -p facecraft-shared --bench queue [-- JOBS --producers P ...]
//!
//! Producers enqueue one job at a time, as each API request does; consumers read, start and
//! finish jobs as `facecraft-worker serve` does (its own reading connection, a semaphore of job
//! slots, a task per delivery). The baseline is XADD, XREADGROUP COUNT and XACK pipelined; the
//! rows "1 per trip" send the same commands (and the queue's own enqueue script) one round trip
//! at a time with the queue's concurrency, which tells round trips apart from script work.
//! Every key lives under a prefix of its own and is deleted at the end. The goal (≥ 20,000
//! jobs/s end to end) is printed next to the result, never asserted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use clap::Parser;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use facecraft_contract::job::{
    now_ms, Format, Job, JobId, JobParams, JobResult, ObjectRef, OutputObject, OutputSpec,
};
use facecraft_shared::config::{QueueSettings, RedisSettings};
use facecraft_shared::queue::{Delivery, Enqueued, Keys, Queue, Start};

/// The goal of issue 11, and the figure it comes from (Sidekiq's published no-op benchmark).
const GOAL_JOBS_PER_SEC: f64 = 20_000.0;
const SIDEKIQ_JOBS_PER_SEC: f64 = 23_500.0;
/// Shorter than the worker's default (2 s): entries are always waiting while a phase runs, and
/// a short block only shortens the idle tail after the last job.
const READ_BLOCK: Duration = Duration::from_millis(200);
/// The worker's default FACECRAFT_REAP_INTERVAL_MS.
const REAP_INTERVAL: Duration = Duration::from_secs(5);
/// Jobs run through the whole path before measuring: connections, script cache.
const WARM_UP_JOBS: usize = 500;

/// Queue throughput benchmark.
#[derive(Parser)]
struct Args {
    /// Jobs per phase.
    #[arg(default_value_t = 20_000)]
    jobs: usize,
    /// Producer tasks, each enqueueing one job at a time (an API request each). Fewer leave the
    /// end-to-end phase waiting on round trips rather than measuring what the queue costs.
    #[arg(long, default_value_t = 16)]
    producers: usize,
    /// Consumers, each a worker with its own reading connection.
    #[arg(long, default_value_t = 2)]
    consumers: usize,
    /// Job slots per consumer (FACECRAFT_WORKER_CONCURRENCY).
    #[arg(long, default_value_t = 16)]
    slots: usize,
    /// Commands per pipeline, and XREADGROUP COUNT, of the bare-Redis baseline.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Shared Redis connections of each queue handle (FACECRAFT_REDIS_POOL_SIZE, default 4).
    #[arg(long, default_value_t = 4)]
    pool_size: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Some(url) = std::env::var("FACECRAFT_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        println!(
            "skipped: set FACECRAFT_REDIS_URL, e.g. scripts/dev-stack run cargo bench -p facecraft-shared --bench queue"
        );
        return Ok(());
    };
    if args.jobs == 0 || args.producers == 0 || args.consumers == 0 || args.slots == 0 {
        bail!("jobs, --producers, --consumers and --slots must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args, url))
}

async fn bench(args: Args, url: String) -> anyhow::Result<()> {
    let prefix = format!("facecraft-bench-{}-{}", std::process::id(), now_ms());
    let redis = RedisSettings {
        url: url.clone(),
        prefix: prefix.clone(),
        pool_size: args.pool_size,
        timeout_ms: 3000,
        ..RedisSettings::default()
    };
    let mut settings = QueueSettings::default();
    // Phase (a) leaves every job waiting at once: keep the backlog check, but never trip it.
    let most_waiting = (args.jobs + WARM_UP_JOBS) as u64;
    if most_waiting >= settings.max_backlog {
        settings.max_backlog = most_waiting + 1;
        settings.stream_max_len = settings.stream_max_len.max(2 * settings.max_backlog);
    }
    redis.validate().map_err(|e| anyhow!(e))?;
    settings.validate().map_err(|e| anyhow!(e))?;
    let client = redis::Client::open(url.as_str())?;
    let mut admin = client.get_multiplexed_async_connection().await?;

    let result = run(&args, &redis, &settings, &client, &mut admin).await;
    let deleted = delete_keys(&mut admin, &prefix).await;
    let rows = result?;
    let deleted = deleted?;

    println!(
        "\nqueue benchmark: {} jobs per phase, {} producers, {} consumers × {} slots, bare batch {}, {} CPUs",
        args.jobs,
        args.producers,
        args.consumers,
        args.slots,
        args.batch,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    print_table(&rows);
    let e2e = rows
        .iter()
        .find(|r| r.name == "queue: end to end")
        .map_or(0.0, Row::rate);
    println!(
        "\ngoal: ≥ {GOAL_JOBS_PER_SEC:.0} jobs/s end to end (Sidekiq's published no-op figure: ~{SIDEKIQ_JOBS_PER_SEC:.0}/s); \
         measured {e2e:.0} jobs/s: {}",
        if e2e >= GOAL_JOBS_PER_SEC { "met" } else { "NOT met" }
    );
    println!(
        "CPU columns: time each process spent on a CPU per job (redis-server from INFO cpu, this \
         process from /proc/self/stat); the machine's cores are shared by both."
    );
    println!("cleaned up: {deleted} keys under {{{prefix}*");
    Ok(())
}

/// One line of the results.
struct Row {
    name: &'static str,
    jobs: usize,
    secs: f64,
    /// The bare-Redis row this one is compared with.
    bare: Option<&'static str>,
    redis_cpu_secs: f64,
    own_cpu_secs: f64,
    /// Redis commands run during the phase (scripts' own commands included): name, calls, µs.
    commands: Vec<(String, u64, u64)>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.jobs as f64 / self.secs
    }
}

/// CPU seconds used so far by redis-server and by this process, and Redis' command counters.
struct CpuMark {
    redis: f64,
    own: f64,
    /// Calls and µs per command (`INFO commandstats`).
    commands: HashMap<String, (u64, u64)>,
}

async fn cpu_mark(admin: &mut MultiplexedConnection) -> anyhow::Result<CpuMark> {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .arg("commandstats")
        .query_async(admin)
        .await?;
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    // cmdstat_evalsha:calls=3,usec=60,usec_per_call=20.00,rejected_calls=0,failed_calls=0
    let commands = info
        .lines()
        .filter_map(|l| {
            let (name, stats) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let stat = |key: &str| {
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            Some((name.to_owned(), (stat("calls")?, stat("usec")?)))
        })
        .collect();
    Ok(CpuMark {
        redis: field("used_cpu_user") + field("used_cpu_sys"),
        own: own_cpu_secs(),
        commands,
    })
}

/// utime + stime of this process. Linux reports them in clock ticks, 100 per second on every
/// architecture it runs on (USER_HZ).
fn own_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Runs `phase` and measures it; the phase answers when its last job was done.
async fn measure<F, Fut>(
    admin: &mut MultiplexedConnection,
    name: &'static str,
    jobs: usize,
    bare: Option<&'static str>,
    phase: F,
) -> anyhow::Result<Row>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Instant>>,
{
    let before = cpu_mark(admin).await?;
    let started = Instant::now();
    let ended = phase().await?;
    let after = cpu_mark(admin).await?;
    let secs = ended.duration_since(started).as_secs_f64();
    eprintln!("{name}: {jobs} jobs in {secs:.3} s");
    let mut commands: Vec<(String, u64, u64)> = after
        .commands
        .into_iter()
        .filter_map(|(name, (calls, usec))| {
            let (calls0, usec0) = before.commands.get(&name).copied().unwrap_or((0, 0));
            // The INFO that took the second mark is counted in it; leave the marks out.
            let calls = calls.saturating_sub(calls0);
            (name != "info" && calls > 0).then(|| (name, calls, usec.saturating_sub(usec0)))
        })
        .collect();
    commands.sort_by_key(|c| std::cmp::Reverse(c.2));
    Ok(Row {
        name,
        jobs,
        secs,
        bare,
        redis_cpu_secs: after.redis - before.redis,
        own_cpu_secs: after.own - before.own,
        commands,
    })
}

async fn run(
    args: &Args,
    redis: &RedisSettings,
    settings: &QueueSettings,
    client: &redis::Client,
    admin: &mut MultiplexedConnection,
) -> anyhow::Result<Vec<Row>> {
    // The API and the workers are separate processes with connections of their own.
    let api = Queue::new(redis, settings)?;
    let workers = Queue::new(redis, settings)?;
    api.ensure_group().await?;
    let n = args.jobs;
    let mut rows = Vec::new();

    end_to_end(args, &api, &workers, WARM_UP_JOBS).await?;

    rows.push(
        measure(admin, "queue: enqueue", n, Some("bare: XADD"), || {
            enqueue_all(&api, args.producers, n)
        })
        .await?,
    );
    rows.push(
        measure(
            admin,
            "queue: consume + finish",
            n,
            Some("bare: XREADGROUP + XACK"),
            || consume_all(args, &workers, n),
        )
        .await?,
    );
    rows.push(
        measure(
            admin,
            "queue: end to end",
            n,
            Some("bare: end to end"),
            || end_to_end(args, &api, &workers, n),
        )
        .await?,
    );
    check_drained(admin, &api, (WARM_UP_JOBS + 2 * n) as u64).await?;

    let stream = format!("{}:bare", redis.prefix);
    let _: () = admin
        .xgroup_create_mkstream(&stream, "workers", "0")
        .await?;
    let mut producer = client.get_multiplexed_async_connection().await?;
    let mut consumer = client.get_multiplexed_async_connection().await?;
    bare_e2e(
        &mut producer,
        &mut consumer,
        &stream,
        args.batch,
        WARM_UP_JOBS,
    )
    .await?;
    rows.push(
        measure(admin, "bare: XADD", n, None, || {
            bare_produce(&mut producer, &stream, args.batch, n)
        })
        .await?,
    );
    rows.push(
        measure(admin, "bare: XREADGROUP + XACK", n, None, || {
            bare_consume(&mut consumer, &stream, args.batch, n)
        })
        .await?,
    );
    rows.push(
        measure(admin, "bare: end to end", n, None, || {
            bare_e2e(&mut producer, &mut consumer, &stream, args.batch, n)
        })
        .await?,
    );
    // The same commands without pipelining, with the queue's concurrency: what one round trip
    // per command costs on this machine, apart from what the scripts do.
    rows.push(
        measure(
            admin,
            "bare: XADD, 1 per trip",
            n,
            Some("bare: XADD"),
            || bare_produce_unpipelined(client, &stream, args.producers, n),
        )
        .await?,
    );
    rows.push(
        measure(
            admin,
            "bare: enqueue.lua, 1/trip",
            n,
            Some("bare: XADD"),
            || bare_enqueue_script(client, &redis.prefix, settings, args.producers, n),
        )
        .await?,
    );
    rows.push(
        measure(
            admin,
            "bare: XACK, 1 per trip",
            n,
            Some("bare: XREADGROUP + XACK"),
            || bare_consume_unpipelined(client, &stream, args, n),
        )
        .await?,
    );
    Ok(rows)
}

/// The smallest job the contract allows: an S3 reference that is never read, default params.
fn noop_job() -> Job {
    Job {
        id: JobId::new(),
        tenant: "bench".to_owned(),
        input: ObjectRef {
            bucket: "facecraft".to_owned(),
            key: "bench/noop.jpg".to_owned(),
        },
        params: JobParams::default(),
        output: OutputSpec {
            bucket: "facecraft".to_owned(),
            prefix: "results/".to_owned(),
        },
        idempotency_key: None,
        created_at_ms: now_ms(),
    }
}

/// What a succeeded job stores: the two objects a default job writes.
fn noop_result(job_id: &JobId) -> JobResult {
    let output = |format: Format| OutputObject {
        format,
        bucket: "facecraft".to_owned(),
        key: format!("results/{job_id}/portrait.{}", format.extension()),
        bytes: 1,
        width: 648,
        height: 648,
        url: None,
    };
    JobResult {
        outputs: vec![output(Format::Png), output(Format::Jpg)],
        face: None,
        timings_ms: Default::default(),
        quality: None,
    }
}

/// `n` jobs from `producers` tasks, each enqueueing one at a time.
async fn enqueue_all(queue: &Queue, producers: usize, n: usize) -> anyhow::Result<Instant> {
    let mut tasks = JoinSet::new();
    for p in 0..producers {
        let share = n / producers + usize::from(p < n % producers);
        let queue = queue.clone();
        tasks.spawn(async move {
            for _ in 0..share {
                match queue.enqueue(&noop_job()).await? {
                    Enqueued::Created(_) => {}
                    other => bail!("enqueue answered {other:?}"),
                }
            }
            Ok(())
        });
    }
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    Ok(Instant::now())
}

/// Jobs done by the consumers of one phase, and when the last of them was.
struct Done {
    count: AtomicUsize,
    target: usize,
    at: OnceLock<Instant>,
}

impl Done {
    fn new(target: usize) -> Self {
        Self {
            count: AtomicUsize::new(0),
            target,
            at: OnceLock::new(),
        }
    }

    fn add(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.target {
            let _ = self.at.set(Instant::now());
        }
    }

    fn finished(&self) -> bool {
        self.count.load(Ordering::Acquire) >= self.target
    }
}

/// Reads, starts and finishes `n` jobs with the consumers, as `facecraft-worker serve` does.
async fn consume_all(args: &Args, queue: &Queue, n: usize) -> anyhow::Result<Instant> {
    let done = Arc::new(Done::new(n));
    let mut consumers = JoinSet::new();
    for c in 0..args.consumers {
        let name = format!("bench-worker-{c}");
        let reader = queue.consumer(&name).await?;
        consumers.spawn(consume(
            queue.clone(),
            reader,
            name,
            args.slots,
            done.clone(),
        ));
    }
    while let Some(res) = consumers.join_next().await {
        res??;
    }
    done.at
        .get()
        .copied()
        .ok_or_else(|| anyhow!("consumers stopped before the last job"))
}

/// One worker's loop: take free slots, read that many entries, a task per delivery.
async fn consume(
    queue: Queue,
    mut reader: facecraft_shared::queue::Consumer,
    name: String,
    slots: usize,
    done: Arc<Done>,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(slots));
    let mut tasks = JoinSet::new();
    let mut last_reap: Option<Instant> = None;
    while !done.finished() {
        let first = permits.clone().acquire_owned().await?;
        let free = 1 + permits.available_permits();
        let mut batch = Vec::new();
        if last_reap.is_none_or(|t| t.elapsed() >= REAP_INTERVAL) {
            last_reap = Some(Instant::now());
            queue.promote_due(1000).await?;
            batch = queue.reclaim(&name, free).await?;
        }
        if batch.len() < free {
            batch.extend(reader.read(free - batch.len(), READ_BLOCK).await?);
        }
        let mut first = Some(first);
        for d in batch {
            let permit = match first.take() {
                Some(p) => p,
                None => permits.clone().try_acquire_owned()?,
            };
            let (queue, name, done) = (queue.clone(), name.clone(), done.clone());
            tasks.spawn(async move {
                let _permit = permit;
                handle(&queue, &name, &d).await?;
                done.add();
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(res) = tasks.try_join_next() {
            res??;
        }
    }
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    Ok(())
}

/// A delivery start to ack, with a pipeline that does nothing.
async fn handle(queue: &Queue, worker: &str, d: &Delivery) -> anyhow::Result<()> {
    let job_id = d
        .job_id
        .with_context(|| format!("entry {} holds no job id", d.entry_id))?;
    match queue.start(d, &job_id, worker).await? {
        Start::Run { .. } => {}
        other => bail!("job {job_id} did not start: {other:?}"),
    }
    if !queue.succeed(d, &job_id, &noop_result(&job_id)).await? {
        bail!("job {job_id} had already ended");
    }
    Ok(())
}

/// Producers and consumers at once; done when the last job is finished.
async fn end_to_end(
    args: &Args,
    api: &Queue,
    workers: &Queue,
    n: usize,
) -> anyhow::Result<Instant> {
    let (enqueued, consumed) = tokio::join!(
        enqueue_all(api, args.producers, n),
        consume_all(args, workers, n)
    );
    enqueued?;
    consumed
}

/// Every job ended as it should: nothing waiting or pending, every one counted succeeded once.
async fn check_drained(
    admin: &mut MultiplexedConnection,
    queue: &Queue,
    expected: u64,
) -> anyhow::Result<()> {
    let stream = queue.keys().stream();
    let waiting: u64 = admin.xlen(&stream).await?;
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&stream)
        .arg(facecraft_shared::queue::GROUP)
        .query_async(admin)
        .await?;
    let pending = match pending {
        redis::Value::Array(v) => match v.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => -1,
        },
        _ => -1,
    };
    let succeeded: Option<u64> = admin.hget(queue.keys().finished(), "succeeded").await?;
    if waiting != 0 || pending != 0 || succeeded != Some(expected) {
        bail!(
            "queue not drained: {waiting} entries left, {pending} pending, {succeeded:?} of {expected} jobs counted succeeded"
        );
    }
    Ok(())
}

/// `n` XADDs, `batch` to a pipeline.
async fn bare_produce(
    conn: &mut MultiplexedConnection,
    stream: &str,
    batch: usize,
    n: usize,
) -> anyhow::Result<Instant> {
    let mut left = n;
    while left > 0 {
        let k = left.min(batch);
        let mut pipe = redis::pipe();
        for _ in 0..k {
            pipe.xadd(stream, "*", &[("id", JobId::new().to_string())])
                .ignore();
        }
        let () = pipe.query_async(conn).await?;
        left -= k;
    }
    Ok(Instant::now())
}

/// Reads and acks `n` entries: each round trip acks the entries of the previous read and reads
/// up to `batch` more.
async fn bare_consume(
    conn: &mut MultiplexedConnection,
    stream: &str,
    batch: usize,
    n: usize,
) -> anyhow::Result<Instant> {
    let opts = StreamReadOptions::default()
        .group("workers", "bare")
        .count(batch)
        .block(100);
    let mut to_ack: Vec<String> = Vec::new();
    let mut acked = 0;
    while acked < n {
        let mut pipe = redis::pipe();
        if !to_ack.is_empty() {
            pipe.xack(stream, "workers", &to_ack).ignore();
        }
        pipe.xread_options(&[stream], &[">"], &opts);
        let (reply,): (Option<StreamReadReply>,) = pipe.query_async(conn).await?;
        acked += to_ack.len();
        to_ack = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).map(|e| e.id))
            .into_iter()
            .flatten()
            .collect();
        if acked + to_ack.len() >= n && !to_ack.is_empty() {
            let _: usize = conn.xack(stream, "workers", &to_ack).await?;
            acked += to_ack.len();
            to_ack.clear();
        }
    }
    if acked != n {
        bail!("bare consumer acked {acked} entries, expected {n}");
    }
    Ok(Instant::now())
}

async fn bare_e2e(
    producer: &mut MultiplexedConnection,
    consumer: &mut MultiplexedConnection,
    stream: &str,
    batch: usize,
    n: usize,
) -> anyhow::Result<Instant> {
    let (produced, consumed) = tokio::join!(
        bare_produce(producer, stream, batch, n),
        bare_consume(consumer, stream, batch, n)
    );
    produced?;
    consumed
}

/// `n` XADDs from `producers` tasks, each on a connection of its own and waiting for every
/// answer, as the queue's producers do.
async fn bare_produce_unpipelined(
    client: &redis::Client,
    stream: &str,
    producers: usize,
    n: usize,
) -> anyhow::Result<Instant> {
    let mut tasks = JoinSet::new();
    for p in 0..producers {
        let share = n / producers + usize::from(p < n % producers);
        let mut conn = client.get_multiplexed_async_connection().await?;
        let stream = stream.to_owned();
        tasks.spawn(async move {
            for _ in 0..share {
                let _: String = conn
                    .xadd(&stream, "*", &[("id", JobId::new().to_string())])
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    Ok(Instant::now())
}

/// `n` runs of the queue's own enqueue script, with the arguments `Queue::enqueue` passes,
/// from `producers` tasks, each on a connection of its own: the script without `Queue`.
async fn bare_enqueue_script(
    client: &redis::Client,
    prefix: &str,
    settings: &QueueSettings,
    producers: usize,
    n: usize,
) -> anyhow::Result<Instant> {
    let script = Arc::new(redis::Script::new(include_str!(
        "../src/queue/scripts/enqueue.lua"
    )));
    let keys = Keys::new(&format!("{prefix}:lua"));
    let mut tasks = JoinSet::new();
    for p in 0..producers {
        let share = n / producers + usize::from(p < n % producers);
        let mut conn = client.get_multiplexed_async_connection().await?;
        let (script, keys, settings) = (script.clone(), keys.clone(), settings.clone());
        tasks.spawn(async move {
            for _ in 0..share {
                let job = noop_job();
                let (kind, value): (String, String) = script
                    .key(keys.stream())
                    .key(keys.job(&job.id))
                    .key(keys.no_idem())
                    .arg(job.id.to_string())
                    .arg(serde_json::to_string(&job)?)
                    .arg(&job.tenant)
                    .arg(now_ms())
                    .arg(settings.status_ttl_secs)
                    .arg(settings.stream_max_len)
                    .arg(settings.max_backlog)
                    .arg("0")
                    .invoke_async(&mut conn)
                    .await?;
                if kind != "created" {
                    bail!("enqueue.lua answered {kind} {value}");
                }
            }
            Ok(())
        });
    }
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    Ok(Instant::now())
}

/// Reads `n` entries with the queue's consumers and slots (XREADGROUP COUNT slots) and acks
/// each with an XACK of its own, waiting for every answer.
async fn bare_consume_unpipelined(
    client: &redis::Client,
    stream: &str,
    args: &Args,
    n: usize,
) -> anyhow::Result<Instant> {
    let done = Arc::new(Done::new(n));
    let mut tasks = JoinSet::new();
    for c in 0..args.consumers {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let opts = StreamReadOptions::default()
            .group("workers", format!("bare-{c}"))
            .count(args.slots)
            .block(100);
        let (stream, done) = (stream.to_owned(), done.clone());
        tasks.spawn(async move {
            while !done.finished() {
                let reply: Option<StreamReadReply> =
                    conn.xread_options(&[&stream], &[">"], &opts).await?;
                for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                    let _: usize = conn.xack(&stream, "workers", &[&entry.id]).await?;
                    done.add();
                }
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    done.at
        .get()
        .copied()
        .ok_or_else(|| anyhow!("bare consumers stopped before the last entry"))
}

/// Deletes every key whose hash tag starts with `prefix` (`{prefix}:…`, `{prefix:lua}:…`);
/// answers how many there were.
async fn delete_keys(admin: &mut MultiplexedConnection, prefix: &str) -> anyhow::Result<usize> {
    let pattern = format!("{{{prefix}*");
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(admin)
            .await?;
        if !keys.is_empty() {
            let _: usize = redis::cmd("UNLINK").arg(&keys).query_async(admin).await?;
            deleted += keys.len();
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<26} {:>8} {:>9} {:>10} {:>8} {:>14} {:>14}",
        "operation", "jobs", "seconds", "jobs/s", "vs bare", "redis µs/job", "bench µs/job"
    );
    for r in rows {
        let ratio = r
            .bare
            .and_then(|b| rows.iter().find(|o| o.name == b))
            .map_or_else(|| "1".to_owned(), |b| format!("{:.3}", r.rate() / b.rate()));
        let per_job = |secs: f64| secs * 1e6 / r.jobs as f64;
        println!(
            "{:<26} {:>8} {:>9.3} {:>10.0} {:>8} {:>14.1} {:>14.1}",
            r.name,
            r.jobs,
            r.secs,
            r.rate(),
            ratio,
            per_job(r.redis_cpu_secs),
            per_job(r.own_cpu_secs)
        );
    }
    println!("\nredis time by command, per job (a script's own commands are counted in it too):");
    for r in rows
        .iter()
        .filter(|r| r.name.starts_with("queue") || r.name.contains(".lua"))
    {
        let per_job = |v: u64| v as f64 / r.jobs as f64;
        let top: Vec<String> = r
            .commands
            .iter()
            .take(10)
            .map(|(name, calls, usec)| {
                format!(
                    "{name} {:.1} µs ({:.2} calls)",
                    per_job(*usec),
                    per_job(*calls)
                )
            })
            .collect();
        println!("  {:<24} {}", r.name, top.join(", "));
    }
}
