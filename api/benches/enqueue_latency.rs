//! Latency of job submissions to a running API at a fixed rate (issue 11, "Performance").
//! Requests go out on schedule whatever the answers (open loop), and each latency is counted
//! from the time its request was due, not from when it went out, so a stalled server shows as
//! the wait its clients would see (no coordinated omission).
//!
//!   scripts/bench-enqueue                      # starts the stack and the API, then this
//!   cargo bench -p facecraft-api --bench enqueue_latency -- --rate 1000 --secs 30
//!
//! Each request is the cheapest valid submission: `POST /v1/jobs` with a JSON reference to an
//! object in S3 (the API does not read it). Exits 1 when more than 1% of requests fail, so a
//! misconfigured run never passes for a result.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;

/// Failed requests above this share make the run fail.
const MAX_ERROR_SHARE: f64 = 0.01;

/// Open-loop latency benchmark of `POST /v1/jobs`.
#[derive(Parser)]
struct Args {
    /// Base URL of the running API.
    #[arg(
        long,
        env = "FACECRAFT_BENCH_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Requests per second, sent on schedule.
    #[arg(long, env = "FACECRAFT_BENCH_RATE", default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of measured requests.
    #[arg(long, env = "FACECRAFT_BENCH_SECS", default_value_t = 30.0)]
    secs: f64,
    /// Seconds at the same rate before measuring (connections, caches), not counted.
    #[arg(long, env = "FACECRAFT_BENCH_WARMUP_SECS", default_value_t = 2.0)]
    warmup_secs: f64,
    /// API key, for an API with FACECRAFT_API_KEYS; sent as `Authorization: Bearer`.
    #[arg(long, env = "FACECRAFT_BENCH_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Key of the input object the jobs reference (in the API's bucket).
    #[arg(
        long,
        env = "FACECRAFT_BENCH_INPUT_KEY",
        default_value = "bench/input.jpg"
    )]
    input_key: String,
    /// Time limit of one request, in seconds; a request over it counts as failed.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What became of one request.
enum Outcome {
    Status(u16),
    Timeout,
    Connect,
    Other,
}

struct Sample {
    /// From the time the request was due to its answer (or failure).
    latency: Duration,
    /// How late it went out: the load generator's own lag.
    send_lag: Duration,
    outcome: Outcome,
    measured: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(args.rate > 0.0 && args.secs > 0.0 && args.warmup_secs >= 0.0) {
        bail!("--rate and --secs must be above 0, --warmup-secs at least 0");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if !bench(&args, &runtime)? {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs the schedule and prints the figures; `false` when too many requests failed. This
/// thread keeps the schedule: the runtime's timer ticks in whole milliseconds, which would add
/// up to a millisecond of the client's own to every latency; a thread's sleep is far finer.
fn bench(args: &Args, runtime: &tokio::runtime::Runtime) -> anyhow::Result<bool> {
    let _entered = runtime.enter();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs))
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .build()?;
    let endpoint = format!("{}/v1/jobs", args.url.trim_end_matches('/'));
    let body = bytes_of(&serde_json::json!({ "input": { "key": args.input_key } }))?;

    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let warmup = (args.warmup_secs * args.rate).round() as u64;
    let total = warmup + (args.secs * args.rate).round() as u64;
    eprintln!(
        "POST {endpoint}: {} requests/s for {} s (+{} s warm-up), {total} requests",
        args.rate, args.secs, args.warmup_secs
    );

    let start = Instant::now() + Duration::from_millis(10);
    let measure_start = start + interval.mul_f64(warmup as f64);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let mut request = client
            .post(&endpoint)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(key) = &args.api_key {
            request = request.bearer_auth(key);
        }
        tasks.push(runtime.spawn(send(request, due, i >= warmup)));
    }
    let last_sent = start.elapsed();
    let samples = runtime.block_on(async {
        let mut samples = Vec::with_capacity(tasks.len());
        for task in tasks {
            samples.push(task.await.context("request task failed")?);
        }
        Ok::<_, anyhow::Error>(samples)
    })?;
    let elapsed = measure_start.elapsed();
    Ok(report(args, &samples, elapsed, last_sent))
}

/// One request, timed from `due`.
async fn send(request: reqwest::RequestBuilder, due: Instant, measured: bool) -> Sample {
    let send_lag = due.elapsed();
    let outcome = match request.send().await {
        // The body too: a client waits for it.
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Ok(_) => Outcome::Status(status),
                Err(e) if e.is_timeout() => Outcome::Timeout,
                Err(_) => Outcome::Other,
            }
        }
        Err(e) if e.is_timeout() => Outcome::Timeout,
        Err(e) if e.is_connect() => Outcome::Connect,
        Err(_) => Outcome::Other,
    };
    Sample {
        latency: due.elapsed(),
        send_lag,
        outcome,
        measured,
    }
}

fn bytes_of(v: &serde_json::Value) -> anyhow::Result<bytes::Bytes> {
    Ok(serde_json::to_vec(v)?.into())
}

fn report(args: &Args, samples: &[Sample], elapsed: Duration, last_sent: Duration) -> bool {
    let measured: Vec<&Sample> = samples.iter().filter(|s| s.measured).collect();
    let count = measured.len();
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    let mut ok: Vec<Duration> = Vec::with_capacity(count);
    for s in &measured {
        let label = match s.outcome {
            Outcome::Status(code) => code.to_string(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Connect => "connect error".into(),
            Outcome::Other => "other error".into(),
        };
        if matches!(s.outcome, Outcome::Status(code) if (200..300).contains(&code)) {
            ok.push(s.latency);
        }
        *by_outcome.entry(label).or_default() += 1;
    }
    let errors = count - ok.len();
    ok.sort_unstable();
    let mut lags: Vec<Duration> = measured.iter().map(|s| s.send_lag).collect();
    lags.sort_unstable();

    println!(
        "\nPOST /v1/jobs (JSON S3 reference), open loop at {} requests/s for {} s, {} CPUs here",
        args.rate,
        args.secs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("requests           {count}");
    println!(
        "answers            {}",
        by_outcome
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "errors             {errors} ({:.2} %)",
        percent(errors, count)
    );
    println!(
        "achieved rate      {:.1} answered/s ({:.1} s from the first due request to the last answer; schedule ended after {:.1} s)",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        last_sent.as_secs_f64()
    );
    println!(
        "latency, ms        (of the {} answered 2xx, from the time each was due)",
        ok.len()
    );
    for (label, q) in [
        ("p50", 50.0),
        ("p90", 90.0),
        ("p99", 99.0),
        ("p99.9", 99.9),
        ("max", 100.0),
    ] {
        let value = quantile(&ok, q).map_or_else(|| "-".to_owned(), |d| format!("{:.2}", ms(d)));
        println!("  {label:<6} {value:>10}");
    }
    println!(
        "send lag, ms       p50 {:.2}, p99 {:.2}, max {:.2} (how late requests left this client, included above; large means the client, not the API, fell behind)",
        quantile(&lags, 50.0).map_or(0.0, ms),
        quantile(&lags, 99.0).map_or(0.0, ms),
        quantile(&lags, 100.0).map_or(0.0, ms)
    );
    let share = errors as f64 / count.max(1) as f64;
    if count == 0 || share > MAX_ERROR_SHARE {
        eprintln!(
            "FAILED: {errors} of {count} requests failed (more than {:.0} %): the figures above are not a result",
            MAX_ERROR_SHARE * 100.0
        );
        return false;
    }
    true
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank quantile `q` (0-100) of sorted values.
fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}
