//! `facecraft-worker serve`: the consumer loop.
//!
//! One loop reads from the stream only as many entries as it has free job slots, so a busy
//! worker leaves work to others. Every job runs in its own task (a panic boundary), its CPU
//! work on the blocking pool. On SIGTERM the loop stops reading, in-flight jobs finish within
//! the drain timeout, and whatever is left unacked is taken over by another worker's reaper.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use facecraft_contract::error::{ErrorCode, JobError};
use facecraft_contract::job::{JobState, Lane};
use facecraft_shared::queue::{
    Consumer, Delivery, DeviceInfo, ModelInfo, Queue, QueueError, Start, WorkerAnnouncement,
};
use facecraft_shared::store::ObjectStore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use facecraft_pipeline::engines::Engines;

use crate::config::ServeSettings;
use crate::context::Ctx;
use crate::job::{run_job, JobFailure};
use crate::metrics::Metrics;

/// Runs until `shutdown` resolves and in-flight jobs are drained.
pub async fn serve<F>(settings: ServeSettings, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    settings
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    let queue =
        Queue::new(&settings.redis, &settings.queue).context("setting up the redis connections")?;
    let store = ObjectStore::new(&settings.s3)
        .await
        .context("building the S3 client")?;
    // Models load once, before the first job; a missing file stops the worker with its name.
    let mut engine_settings = settings.engines.clone();
    engine_settings.jobs_at_once = settings.concurrency();
    let engines = tokio::task::spawn_blocking(move || Engines::load(&engine_settings))
        .await
        .context("loading models")?
        .context("loading models")?;
    tracing::info!(?engines, "models loaded");
    // A worker with the restoration engine serves the GPU lane, every other one the CPU lane:
    // a job is only ever read by a worker that has all its engines.
    let lane = if engines.restores() {
        Lane::Gpu
    } else {
        Lane::Cpu
    };
    let queue = queue.for_lane(lane);
    let name = settings.consumer_name();
    let concurrency = settings.concurrency();
    let metrics = Arc::new(Metrics::new(concurrency, &engines.devices()));
    let metrics_server = start_metrics(&settings, &metrics, &queue).await?;
    tracing::info!(worker = %name, concurrency, %lane, "worker starting");

    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown requested: no new jobs, draining in-flight ones");
            stop.cancel();
        });
    }

    let ctx = Arc::new(Ctx::new(
        queue,
        store,
        settings,
        Arc::new(engines),
        name.clone(),
        metrics,
    ));

    // Redis may still be starting (compose, k8s): wait for it rather than crash-looping.
    let Some(mut consumer) = connect(&ctx, &stop).await else {
        return Ok(());
    };
    tracing::info!(
        ready_ms = started.elapsed().as_millis() as u64,
        "ready: taking jobs"
    );

    let renewer = tokio::spawn(renew_leases(ctx.clone()));
    let announcer = tokio::spawn(keep_announcing(ctx.clone(), announcement(&ctx)));
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut last_reap: Option<Instant> = None;
    let mut failures = 0u32;

    while !stop.is_cancelled() {
        let first = tokio::select! {
            p = permits.clone().acquire_owned() => p.context("semaphore closed")?,
            () = stop.cancelled() => break,
        };
        let free = 1 + permits.available_permits();
        let batch = match next_batch(&ctx, &mut consumer, free, &mut last_reap).await {
            Ok(b) => {
                failures = 0;
                b
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(failures);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "reading the queue failed");
                drop(first);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {},
                    () = stop.cancelled() => break,
                }
                if let QueueError::Unavailable(_) | QueueError::Protocol(_) = e {
                    match ctx.queue.consumer(&name).await {
                        Ok(c) => consumer = c,
                        Err(e) => tracing::warn!(error = %e, "reconnecting the reader failed"),
                    }
                }
                continue;
            }
        };
        let mut first = Some(first);
        for d in batch {
            let permit = match first.take() {
                Some(p) => p,
                // Only this loop takes permits, and it asked for no more entries than were free.
                None => permits
                    .clone()
                    .try_acquire_owned()
                    .context("job slots miscounted")?,
            };
            let span =
                tracing::info_span!("job", job_id = tracing::field::Empty, entry = %d.entry_id);
            tasks.spawn(handle(ctx.clone(), d, permit).instrument(span));
        }
        while let Some(res) = tasks.try_join_next() {
            if let Err(e) = res {
                tracing::error!(error = %e, "job task failed outside its panic boundary");
            }
        }
    }

    let left = tasks.len();
    if left > 0 {
        tracing::info!(
            jobs = left,
            timeout_secs = ctx.settings.drain_timeout_secs,
            "draining"
        );
        let drained = tokio::time::timeout(ctx.settings.drain_timeout(), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                jobs = tasks.len(),
                "drain timeout: leaving unfinished jobs to other workers"
            );
            tasks.abort_all();
        }
    }
    renewer.abort();
    announcer.abort();
    if let Err(e) = ctx.queue.retire(&ctx.name).await {
        tracing::debug!(error = %e, "withdrawing the announcement failed; it expires by itself");
    }
    if let Some(task) = metrics_server {
        task.abort();
    }
    tracing::info!("worker stopped");
    Ok(())
}

/// Starts `/metrics` and `/healthz`. A default address that is taken only warns (two workers on
/// one host); an address set explicitly must bind.
async fn start_metrics(
    settings: &ServeSettings,
    metrics: &Arc<Metrics>,
    queue: &Queue,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some((addr, explicit)) = settings.metrics_listener().map_err(anyhow::Error::msg)? else {
        tracing::info!("metrics listener disabled");
        return Ok(None);
    };
    match crate::metrics::listen(addr, metrics.clone(), queue.clone()).await {
        Ok((local, serve)) => {
            tracing::info!(addr = %local, "metrics listener started");
            Ok(Some(tokio::spawn(serve)))
        }
        Err(e) if !explicit => {
            tracing::warn!(error = format!("{e:#}"), "no metrics listener; set FACECRAFT_WORKER_METRICS_ADDR to another address, or `off`");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn connect(ctx: &Ctx, stop: &CancellationToken) -> Option<Consumer> {
    let mut failures = 0;
    loop {
        let attempt = async {
            ctx.queue.ensure_group().await?;
            ctx.queue.consumer(&ctx.name).await
        };
        match attempt.await {
            Ok(c) => {
                ctx.queue.warn_if_legacy().await;
                return Some(c);
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(failures);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "waiting for redis");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {},
                    () = stop.cancelled() => return None,
                }
            }
        }
    }
}

/// Up to `free` entries: first any whose worker died, then new ones.
async fn next_batch(
    ctx: &Ctx,
    consumer: &mut Consumer,
    free: usize,
    last_reap: &mut Option<Instant>,
) -> Result<Vec<Delivery>, QueueError> {
    let mut batch = Vec::new();
    if last_reap.is_none_or(|t| t.elapsed() >= ctx.settings.reap_interval()) {
        *last_reap = Some(Instant::now());
        let promoted = ctx.queue.promote_due(1000).await?;
        if promoted > 0 {
            tracing::debug!(promoted, "retries moved back to the stream");
        }
        batch = ctx.queue.reclaim(&ctx.name, free).await?;
        if !batch.is_empty() {
            tracing::info!(entries = batch.len(), "took over jobs whose lease expired");
        }
        // CPU workers run everywhere the API does not reach (a fleet without API replicas
        // for a while): they also fail GPU-lane jobs no GPU worker took in time.
        if ctx.queue.lane() == Lane::Cpu {
            if let Some(timeout) = ctx.settings.queue.no_gpu_worker_timeout() {
                ctx.queue.fail_unserved(Lane::Gpu, timeout).await?;
            }
        }
    }
    if batch.len() < free {
        // Short block while retries wait, so they are promoted on time.
        batch.extend(
            consumer
                .read(free - batch.len(), ctx.settings.read_block())
                .await?,
        );
    }
    Ok(batch)
}

/// Wait after `failures` Redis/S3 failures in a row: 200 ms doubling, at most 10 s.
fn backoff(failures: u32) -> Duration {
    facecraft_contract::retry::backoff(
        Duration::from_millis(200),
        Duration::from_secs(10),
        failures.saturating_add(1),
    )
}

/// Keeps the leases of in-flight entries fresh so no reaper takes them over.
async fn renew_leases(ctx: Arc<Ctx>) {
    let every = ctx.settings.queue.lease_timeout() / 3;
    loop {
        tokio::time::sleep(every).await;
        let entries = ctx.in_flight();
        if let Err(e) = ctx.queue.renew(&ctx.name, &entries).await {
            tracing::warn!(error = %e, entries = entries.len(), "lease renewal failed");
        }
    }
}

/// How often a worker refreshes its announcement; it expires after three missed refreshes.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(10);

/// What this worker tells the API about itself (`/status`'s device and models).
fn announcement(ctx: &Ctx) -> WorkerAnnouncement {
    let models = ctx
        .engines
        .models()
        .into_iter()
        .map(|(name, role)| {
            (
                name.to_owned(),
                ModelInfo {
                    loaded: true,
                    kind: role.to_owned(),
                },
            )
        })
        .collect();
    WorkerAnnouncement {
        name: ctx.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        device: device(&ctx.engines.devices()),
        models,
        concurrency: ctx.settings.concurrency(),
        lane: ctx.queue.lane(),
    }
}

/// The device the engines run on: `cuda` when any engine got ONNX Runtime's CUDA provider
/// (`FACECRAFT_DEVICE`, checked at load), else `cpu` with the CPU's name.
fn device(devices: &[(&'static str, &'static str)]) -> DeviceInfo {
    if devices.iter().any(|(_, d)| *d == "cuda") {
        return DeviceInfo {
            kind: "cuda".to_owned(),
            // Which GPU, and the CUDA version, come with the GPU lane (issue 10), which will
            // ask the driver; ONNX Runtime does not tell.
            name: None,
            cuda_version: None,
        };
    }
    let cpu_name = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    });
    DeviceInfo {
        kind: "cpu".to_owned(),
        name: cpu_name,
        cuda_version: None,
    }
}

async fn keep_announcing(ctx: Arc<Ctx>, me: WorkerAnnouncement) {
    let mut failing = false;
    loop {
        match ctx.queue.announce(&me, ANNOUNCE_EVERY * 3).await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "announcing this worker failed; retrying");
            }
            Err(_) => {}
        }
        tokio::time::sleep(ANNOUNCE_EVERY).await;
    }
}

/// One delivery, start to ack. Never panics outward: the pipeline runs in its own task.
async fn handle(ctx: Arc<Ctx>, d: Delivery, _permit: OwnedSemaphorePermit) {
    let Some(job_id) = d.job_id else {
        tracing::warn!("stream entry without a job id: discarding");
        let _ = with_retry(&ctx, "discard", || ctx.queue.discard(&d)).await;
        return;
    };
    tracing::Span::current().record("job_id", tracing::field::display(&job_id));
    let _busy = ctx.metrics.busy();
    ctx.track(&d.entry_id, true);
    let Some(start) = with_retry(&ctx, "start", || ctx.queue.start(&d, &job_id, &ctx.name)).await
    else {
        ctx.track(&d.entry_id, false);
        return;
    };
    match start {
        Start::Skip(reason) => tracing::info!(reason = %reason, "job already ended: entry acked"),
        Start::Dead { job, attempts } => {
            let err = JobError::new(
                ErrorCode::WorkerCrashed,
                format!(
                    "processing started {} times without finishing (the worker died or was killed each time); gave up",
                    attempts.saturating_sub(1)
                ),
            );
            tracing::error!(code = %err.code, "job is dead");
            if with_retry(&ctx, "dead", || {
                ctx.queue.dead(&d, &job_id, job.as_deref(), &err)
            })
            .await
            .is_some()
            {
                ctx.metrics.failed(JobState::Dead, err.code);
            }
        }
        Start::Run {
            job,
            attempts,
            retries,
        } => {
            tracing::info!(attempts, "job started");
            ctx.metrics.started();
            let started = Instant::now();
            // The span goes along so the pipeline's own log lines carry the job id too.
            let outcome =
                tokio::spawn(run_job(ctx.clone(), *job).instrument(tracing::Span::current())).await;
            ctx.metrics.run_time(started.elapsed());
            let ms = started.elapsed().as_millis() as u64;
            match outcome {
                Ok(Ok(result)) => {
                    tracing::info!(ms, "job succeeded");
                    if with_retry(&ctx, "succeed", || ctx.queue.succeed(&d, &job_id, &result)).await
                        == Some(true)
                    {
                        ctx.metrics.succeeded(&result);
                    }
                }
                Ok(Err(JobFailure::Cancelled)) => {
                    tracing::info!("job cancelled while running");
                    if with_retry(&ctx, "cancelled", || ctx.queue.cancelled(&d, &job_id)).await
                        == Some(true)
                    {
                        ctx.metrics.cancelled();
                    }
                }
                Ok(Err(JobFailure::Error(err))) if err.code.is_transient() => {
                    if retries >= ctx.settings.max_retries {
                        tracing::error!(code = %err.code, retries, "transient failures exhausted the retries");
                        let err = JobError::new(
                            err.code,
                            format!("gave up after {retries} retries: {}", err.message),
                        );
                        if with_retry(&ctx, "dead", || ctx.queue.dead(&d, &job_id, None, &err))
                            .await
                            .is_some()
                        {
                            ctx.metrics.failed(JobState::Dead, err.code);
                        }
                    } else {
                        let delay = ctx.settings.queue.retry_delay(retries + 1);
                        tracing::warn!(code = %err.code, error = %err.message, retry_in_ms = delay.as_millis() as u64, "transient failure: retrying");
                        if with_retry(&ctx, "retry", || ctx.queue.retry(&d, &job_id, &err, delay))
                            .await
                            .is_some()
                        {
                            ctx.metrics.retried(err.code);
                        }
                    }
                }
                Ok(Err(JobFailure::Error(err))) => {
                    tracing::info!(code = %err.code, error = %err.message, ms, "job failed");
                    if with_retry(&ctx, "fail", || ctx.queue.fail(&d, &job_id, &err)).await
                        == Some(true)
                    {
                        ctx.metrics.failed(JobState::Failed, err.code);
                    }
                }
                Err(join) => {
                    // A panic would repeat on every delivery; fail the job instead of killing more workers.
                    let what = if join.is_panic() {
                        "panicked"
                    } else {
                        "was aborted"
                    };
                    tracing::error!(error = %join, "job task {what}");
                    let err = JobError::new(
                        ErrorCode::Internal,
                        format!("the pipeline {what} on this input"),
                    );
                    if with_retry(&ctx, "fail", || ctx.queue.fail(&d, &job_id, &err)).await
                        == Some(true)
                    {
                        ctx.metrics.failed(JobState::Failed, err.code);
                    }
                }
            }
        }
    }
    ctx.track(&d.entry_id, false);
}

/// Retries a queue write through a short Redis outage. Gives up after about a minute: the
/// entry then stays pending and is taken over after its lease, so nothing is lost.
async fn with_retry<T, F, Fut>(ctx: &Ctx, what: &str, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, QueueError>>,
{
    let deadline = Instant::now() + Duration::from_secs(60).max(ctx.settings.queue.lease_timeout());
    let mut failures = 0;
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(e) if Instant::now() < deadline => {
                failures += 1;
                tracing::warn!(error = %e, op = what, "queue write failed: retrying");
                tokio::time::sleep(backoff(failures)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, op = what, "queue write failed: leaving the entry for the reaper");
                return None;
            }
        }
    }
}
