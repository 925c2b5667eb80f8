//! Reads what is left of a request body after the handler answered without it.
//!
//! Handlers refuse many requests before (or part way through) their body: a wrong API key, a
//! body over its route's limit, a bad field. hyper cannot reuse a connection whose request body
//! was not read to its end, so it closes it; a client still writing then gets a reset or a
//! broken pipe in place of the 401 or 413 it was sent, and a pooled client may reuse a socket
//! the server is closing. Like a web server's lingering close, this layer reads and discards the
//! rest, up to a byte and a time budget, before the answer goes out; past the budget the answer
//! carries `Connection: close`. A client that sent `Expect: 100-continue` and whose body was
//! never asked for has not sent it: nothing is read, and hyper answers without a 100.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, EXPECT};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use facecraft_contract::ErrorCode;
use http_body::{Frame, SizeHint};

use crate::error::ApiError;

/// What the layer refuses at once, and how much of an unread body it may read and throw away,
/// for how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// The largest body any route takes: a declared `Content-Length` over it is refused (413)
    /// before a handler runs, instead of waiting for bytes only to count them.
    pub largest_body: u64,
    pub max_bytes: u64,
    pub max_time: Duration,
}

/// The request body, shared between the handler (through [`Tap`]) and this layer, which takes
/// back what the handler left.
struct Slot {
    body: Option<Body>,
    polled: bool,
    ended: bool,
}

type Shared = Arc<Mutex<Slot>>;

fn lock(slot: &Shared) -> std::sync::MutexGuard<'_, Slot> {
    // A panic while polling leaves the body in an unknown state; it is then only dropped.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The body the handler sees: it reads through to the shared one.
struct Tap(Shared);

impl HttpBody for Tap {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut slot = lock(&self.0);
        slot.polled = true;
        let Some(body) = slot.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            slot.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let slot = lock(&self.0);
        slot.ended || slot.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.0)
            .body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// Middleware: see the module docs.
pub(crate) async fn linger(State(budget): State<Budget>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let expects_continue = expects_continue(&parts.headers);
    let declared = declared_length(&parts.headers);
    let slot: Shared = Arc::new(Mutex::new(Slot {
        body: Some(body),
        polled: false,
        ended: false,
    }));
    let response = match declared.filter(|&n| n > budget.largest_body) {
        Some(n) => too_large(&parts.uri, n, budget.largest_body),
        None => {
            next.run(Request::from_parts(parts, Body::new(Tap(slot.clone()))))
                .await
        }
    };
    let (rest, polled) = {
        let mut s = lock(&slot);
        let rest = if s.ended { None } else { s.body.take() };
        (rest, s.polled)
    };
    let Some(rest) = rest else {
        return response;
    };
    if rest.is_end_stream() || (expects_continue && !polled) {
        return response;
    }
    if declared.is_some_and(|n| n > budget.max_bytes) {
        tracing::debug!(
            declared,
            "unread request body over the drain budget; closing the connection"
        );
        return close(response);
    }
    match tokio::time::timeout(budget.max_time, discard(rest, budget.max_bytes)).await {
        Ok(Ok(bytes)) => {
            tracing::debug!(bytes, status = %response.status(), "drained an unread request body");
            response
        }
        Ok(Err(why)) => {
            tracing::debug!(%why, "request body not drained; closing the connection");
            close(response)
        }
        Err(_) => {
            tracing::debug!("request body drain timed out; closing the connection");
            close(response)
        }
    }
}

fn too_large(uri: &Uri, declared: u64, largest: u64) -> Response {
    let error = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!(
            "a request body of {declared} bytes is over the largest this API takes ({largest})"
        ),
    );
    error.into_response_for(uri.path())
}

/// Reads `body` to its end, keeping nothing; refuses past `max_bytes`.
async fn discard(mut body: Body, max_bytes: u64) -> Result<u64, String> {
    let mut seen = 0u64;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            seen += data.len() as u64;
            if seen > max_bytes {
                return Err(format!("over {max_bytes} bytes"));
            }
        }
    }
    Ok(seen)
}

fn close(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_header_is_case_insensitive_and_exact() {
        let mut h = HeaderMap::new();
        assert!(!expects_continue(&h));
        h.insert(EXPECT, HeaderValue::from_static("100-Continue"));
        assert!(expects_continue(&h));
        h.insert(EXPECT, HeaderValue::from_static("100-continue-ish"));
        assert!(!expects_continue(&h));
    }

    #[test]
    fn declared_length_reads_only_a_number() {
        let mut h = HeaderMap::new();
        assert_eq!(declared_length(&h), None);
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("6000000"));
        assert_eq!(declared_length(&h), Some(6_000_000));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("-1"));
        assert_eq!(declared_length(&h), None);
    }

    #[tokio::test]
    async fn discard_counts_and_refuses_past_the_budget() {
        let body = || Body::from(vec![7u8; 1000]);
        assert_eq!(discard(body(), 1000).await, Ok(1000));
        assert!(discard(body(), 999).await.is_err());
    }

    #[tokio::test]
    async fn the_tap_reads_through_and_marks_the_end() {
        let slot: Shared = Arc::new(Mutex::new(Slot {
            body: Some(Body::from("hello")),
            polled: false,
            ended: false,
        }));
        let mut tap = Body::new(Tap(slot.clone()));
        let mut got = Vec::new();
        while let Some(f) = std::future::poll_fn(|cx| Pin::new(&mut tap).poll_frame(cx)).await {
            got.extend_from_slice(f.unwrap().data_ref().unwrap());
        }
        assert_eq!(got, b"hello");
        let s = lock(&slot);
        assert!(s.polled && s.ended);
    }
}
