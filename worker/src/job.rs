//! One job's work, from fetching the input to storing the portraits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use facecraft_contract::error::{ErrorCode, JobError};
use facecraft_contract::job::{Job, JobResult, ObjectRef, OutputObject};
use tracing::Instrument;

use crate::context::Ctx;
use facecraft_pipeline::portrait::{self, RenderError, Stage};

/// Why a job did not succeed.
#[derive(Debug)]
pub(crate) enum JobFailure {
    /// A client asked for it to stop.
    Cancelled,
    Error(JobError),
}

impl From<JobError> for JobFailure {
    fn from(e: JobError) -> Self {
        Self::Error(e)
    }
}

/// Fetch → render (on a blocking thread) → store. Progress is best effort: a Redis hiccup
/// while reporting does not fail the job.
pub(crate) async fn run_job(ctx: Arc<Ctx>, job: Job) -> Result<JobResult, JobFailure> {
    let id = job.id;
    let cancelled = Arc::new(AtomicBool::new(false));
    let report = {
        let ctx = ctx.clone();
        let cancelled = cancelled.clone();
        move |stage: &'static str, percent: u8| {
            let ctx = ctx.clone();
            let cancelled = cancelled.clone();
            async move {
                tracing::debug!(stage, percent, "progress");
                match ctx.queue.progress(&id, stage, percent).await {
                    Ok(true) => cancelled.store(true, Ordering::SeqCst),
                    Ok(false) => {}
                    Err(e) => tracing::debug!(error = %e, "progress update failed"),
                }
            }
        }
    };
    let mut timings = BTreeMap::new();

    report("fetch", 5).await;
    if cancelled.load(Ordering::SeqCst) {
        return Err(JobFailure::Cancelled);
    }
    let t = Instant::now();
    let input = ctx
        .store
        .get(&job.input, ctx.settings.limits.max_input_bytes)
        .await
        .map_err(|e| JobError::new(e.code(), e.to_string()))?;
    timings.insert("fetch".to_owned(), t.elapsed().as_millis() as u64);

    // Stage reports from the blocking thread go through a small channel; a full channel only
    // drops a progress update.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Stage>(8);
    let forward = {
        let report = report.clone();
        tokio::spawn(
            async move {
                while let Some(stage) = rx.recv().await {
                    report(stage.name(), stage.percent()).await;
                }
            }
            .instrument(tracing::Span::current()),
        )
    };
    let params = job.params.clone();
    let limits = ctx.settings.limits.decode_params();
    let flag = cancelled.clone();
    let engines = ctx.engines.clone();
    // The job's span goes along to the blocking thread, so pipeline log lines carry job_id.
    let span = tracing::Span::current();
    let rendered = tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            portrait::render(&input, &params, &limits, &engines, &mut |stage| {
                let _ = tx.try_send(stage);
                !flag.load(Ordering::SeqCst)
            })
        })
    })
    .await;
    let _ = forward.await;
    let portrait = match rendered {
        Ok(Ok(p)) => p,
        Ok(Err(RenderError::Cancelled)) => return Err(JobFailure::Cancelled),
        Ok(Err(e)) => return Err(render_error(&e).into()),
        // Re-raise so the job task's panic boundary handles it in one place.
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => return Err(JobError::new(ErrorCode::Internal, join.to_string()).into()),
    };
    for (stage, ms) in &portrait.timings {
        timings.insert((*stage).to_owned(), *ms);
    }

    report("store", 90).await;
    if cancelled.load(Ordering::SeqCst) {
        return Err(JobFailure::Cancelled);
    }
    let t = Instant::now();
    let mut outputs = Vec::new();
    for out in portrait.outputs {
        let obj = ObjectRef {
            bucket: job.output.bucket.clone(),
            key: job.output_key(out.format),
        };
        let size = out.bytes.len() as u64;
        ctx.store
            .put(&obj, Bytes::from(out.bytes), out.format.content_type())
            .await
            .map_err(|e| JobError::new(e.code(), e.to_string()))?;
        outputs.push(OutputObject {
            format: out.format,
            bucket: obj.bucket,
            key: obj.key,
            bytes: size,
            width: out.width,
            height: out.height,
            url: None,
        });
    }
    timings.insert("store".to_owned(), t.elapsed().as_millis() as u64);

    Ok(JobResult {
        outputs,
        face: portrait.face,
        timings_ms: timings,
        quality: portrait.quality,
    })
}

/// A pipeline failure as the job's error; a strict quality failure carries its warnings.
fn render_error(e: &RenderError) -> JobError {
    let error = JobError::new(e.code(), e.to_string());
    match e {
        RenderError::QualityRejected(warnings) => error.with_warnings(warnings.clone()),
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use facecraft_contract::job::QualityWarning;

    use super::*;

    #[test]
    fn a_strict_quality_failure_keeps_its_warnings() {
        let warnings = vec![QualityWarning::Blurry, QualityWarning::Padded];
        let e = render_error(&RenderError::QualityRejected(warnings.clone()));
        assert_eq!(e.code, ErrorCode::QualityRejected);
        assert_eq!(e.warnings, warnings);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["warnings"], serde_json::json!(["blurry", "padded"]));

        let e = render_error(&RenderError::NoFace);
        assert_eq!(e.code, ErrorCode::NoFaceDetected);
        assert!(e.warnings.is_empty());
        let json = serde_json::to_value(&e).unwrap();
        assert!(json.get("warnings").is_none(), "{json}");
    }
}
