//! `GET /v1/jobs/{id}/events`: a job's status as server-sent events until it ends.
//!
//! Every event is `event: status` with the status record as `GET /v1/jobs/{id}` returns it: the
//! current one at once, then one per change, the last one terminal. The worker's Lua scripts
//! PUBLISH on `{p}:events:{id}` at every change; a message only says "read the record again",
//! so the record stays the one source of truth. Without pub/sub (Redis restarted, connection
//! cut) a stream falls back to polling, and every stream ends after `FACECRAFT_SSE_MAX_SECS`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use facecraft_contract::job::{JobId, JobStatus, ObjectRef};
use facecraft_contract::ErrorCode;
use facecraft_shared::queue::JobEvents;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::auth::Caller;
use crate::config::Settings;
use crate::error::ApiError;
use crate::responses::AuthErrors;
use crate::schema::ErrorBody;
use crate::AppState;

/// Consecutive failed status reads after which a stream ends (the client reconnects, and gets
/// a clear 503 if Redis is still away).
const MAX_READ_FAILURES: u32 = 5;

/// Limits and shared state of all event streams of this process.
pub(crate) struct Streams {
    permits: Arc<Semaphore>,
    max: usize,
    max_duration: Duration,
    keepalive: Duration,
    poll: Duration,
    /// Turns true when the server shuts down; open streams end so shutdown need not wait.
    shutdown: watch::Receiver<bool>,
    rejected: std::sync::atomic::AtomicU64,
}

impl Streams {
    pub fn new(settings: &Settings, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(settings.sse_max_streams)),
            max: settings.sse_max_streams,
            max_duration: Duration::from_secs(settings.sse_max_secs),
            keepalive: Duration::from_secs(settings.sse_keepalive_secs),
            poll: Duration::from_millis(settings.sse_poll_ms),
            shutdown,
            rejected: Default::default(),
        }
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }

    /// Streams refused because all slots were taken, since start.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Live progress (server-sent events)
///
/// `text/event-stream`: every event is `event: status` with the full status record as data;
/// the first at once, then one per change; the stream ends after a terminal state.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    tag = "jobs",
    operation_id = "job_events",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "Job id (UUIDv7)", example = "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b")),
    responses(
        (status = 200, description = "The event stream.", content_type = "text/event-stream", body = crate::schema::JobEvent,
            example = "event: status\ndata: {\"id\":\"0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b\",\"state\":\"running\",\"progress\":{\"stage\":\"segment\",\"percent\":50}}\n\n"),
        (status = 404, description = "No such job, or another tenant's.", body = ErrorBody,
            example = json!({"error": "job not found", "code": "not_found"})),
        (status = 503, description = "Redis unreachable, or `FACECRAFT_SSE_MAX_STREAMS` streams open (`too_many_streams`); see `Retry-After`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait")),
            example = json!({"error": "too many event streams are open; poll GET /v1/jobs/{id}", "code": "too_many_streams"})),
        AuthErrors,
    ),
)]
pub(crate) async fn job_events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let id = JobId::parse(&id).ok_or_else(|| ApiError::not_found("job"))?;
    // The same rule as `GET /v1/jobs/{id}`: an admin reads any job, everyone else their own.
    let tenant = (!caller.admin).then_some(caller.tenant);
    let permit = state
        .streams
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            state
                .streams
                .rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TooManyStreams,
                "too many event streams are open; poll GET /v1/jobs/{id} or retry later",
            );
            e.retry_after = Some(5);
            e
        })?;
    // Subscribe before the first read: a change between the two is then seen on the channel.
    let events = match state.queue.subscribe(&id).await {
        Ok(events) => Some(events),
        Err(e) => {
            tracing::warn!(job_id = %id, error = %e, "events: no pub/sub, polling instead");
            None
        }
    };
    let first = state
        .queue
        .status(&id, tenant.as_deref())
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    tracing::debug!(job_id = %id, "event stream opened");
    let live = Live {
        deadline: Instant::now() + state.streams.max_duration,
        poll: state.streams.poll,
        shutdown: state.streams.shutdown.clone(),
        keepalive: state.streams.keepalive,
        state,
        id,
        tenant,
        events,
        first: Some(first),
        last: None,
        failures: 0,
        done: false,
        _permit: permit,
    };
    let keepalive = live.keepalive;
    let stream = futures::stream::unfold(live, |mut live| async move {
        let event = live.next_event().await?;
        Some((Ok::<_, Infallible>(event), live))
    });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(keepalive).text("keep-alive"))
        .into_response();
    // Reverse proxies (nginx) would otherwise buffer the stream.
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// One open stream. Dropping it (client gone, stream ended) closes its Redis subscription and
/// frees its slot.
struct Live {
    state: Arc<AppState>,
    id: JobId,
    tenant: Option<String>,
    events: Option<JobEvents>,
    first: Option<JobStatus>,
    /// The last record sent, as JSON, so unchanged re-reads send nothing.
    last: Option<String>,
    deadline: Instant,
    poll: Duration,
    keepalive: Duration,
    shutdown: watch::Receiver<bool>,
    failures: u32,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

impl Live {
    /// The next event to send; `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        if let Some(status) = self.first.take() {
            return self.emit(status).await;
        }
        loop {
            // With pub/sub the poll is only a safety net (a cancel request of a running job,
            // for one, publishes nothing); without it, it is how changes are seen.
            let wait = if self.events.is_some() {
                self.poll * 10
            } else {
                self.poll
            };
            tokio::select! {
                _ = self.shutdown.wait_for(|stop| *stop) => return None,
                () = tokio::time::sleep_until(self.deadline) => {
                    tracing::debug!(job_id = %self.id, "event stream reached its time limit");
                    return None;
                }
                notice = next_notice(&mut self.events) => if notice.is_none() {
                    tracing::warn!(job_id = %self.id, "events: pub/sub connection lost, polling instead");
                    self.events = None;
                },
                () = tokio::time::sleep(wait) => {}
            }
            match self
                .state
                .queue
                .status(&self.id, self.tenant.as_deref())
                .await
            {
                Ok(Some(status)) => {
                    self.failures = 0;
                    if let Some(event) = self.emit(status).await {
                        return Some(event);
                    }
                }
                // Expired or deleted: nothing more will happen to it.
                Ok(None) => return None,
                Err(e) => {
                    self.failures += 1;
                    tracing::warn!(job_id = %self.id, error = %e, failures = self.failures, "events: reading the status failed");
                    if self.failures >= MAX_READ_FAILURES {
                        return None;
                    }
                }
            }
        }
    }

    /// An event for `status` if it differs from the last one sent.
    async fn emit(&mut self, mut status: JobStatus) -> Option<Event> {
        let json = serde_json::to_string(&status).ok()?;
        if self.last.as_deref() == Some(json.as_str()) {
            return None;
        }
        self.last = Some(json);
        self.done = status.state.is_terminal();
        with_urls(&self.state, &mut status).await;
        Event::default().event("status").json_data(&status).ok()
    }
}

async fn next_notice(events: &mut Option<JobEvents>) -> Option<()> {
    match events {
        Some(e) => e.next().await,
        None => std::future::pending().await,
    }
}

/// Presigned URLs on the outputs, as `GET /v1/jobs/{id}` shows them. A signing failure leaves
/// the URL out rather than ending the stream: the client can still fetch the record.
async fn with_urls(state: &AppState, status: &mut JobStatus) {
    let Some(result) = status.result.as_mut() else {
        return;
    };
    for out in &mut result.outputs {
        let obj = ObjectRef {
            bucket: out.bucket.clone(),
            key: out.key.clone(),
        };
        match state.store.presign_get(&obj).await {
            Ok(url) => out.url = Some(url),
            Err(e) => tracing::warn!(error = %e, "events: presigning a result failed"),
        }
    }
}
