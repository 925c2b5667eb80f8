//! API keys, tenants and per-key rate limits, and the extractors that authenticate a request
//! before its handler runs: [`Caller`] for `/v1`, [`CompatCaller`] and [`ProcessCaller`] for the
//! Python-compatible routes (refused in their error shapes).
//!
//! Keys are kept only as SHA-256 digests and compared in constant time, so neither memory
//! dumps nor response timing give them away. Authentication is off only when the operator
//! says so (`FACECRAFT_AUTH_DISABLED=true`); then every request is tenant `default`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use facecraft_contract::ErrorCode;
use sha2::{Digest, Sha256};

use crate::config::ApiKey;
use crate::error::{ApiError, CompatError};
use crate::AppState;

/// Who is calling.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub tenant: String,
    /// May list the dead stream and re-queue any tenant's job.
    pub admin: bool,
}

pub(crate) struct Auth {
    keys: Vec<(String, [u8; 32])>,
    admins: HashSet<String>,
    limiter: Option<RateLimiter>,
}

impl Auth {
    pub fn new(keys: &[ApiKey], admins: &[String], per_minute: u32, burst: u32) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|k| (k.tenant.clone(), digest(k.key.as_bytes())))
                .collect(),
            admins: admins.iter().cloned().collect(),
            limiter: (per_minute > 0).then(|| RateLimiter::new(per_minute, burst)),
        }
    }

    /// Authenticates the request and charges one request to its tenant's rate limit.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let tenant = self.tenant(headers)?;
        if let Some(limiter) = &self.limiter {
            if let Err(wait_secs) = limiter.take(&tenant) {
                return Err(ApiError {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    code: ErrorCode::RateLimited,
                    message: "rate limit of this API key exceeded; retry later".into(),
                    retry_after: Some(wait_secs),
                });
            }
        }
        Ok(Caller {
            admin: self.admins.contains(&tenant),
            tenant,
        })
    }

    fn tenant(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        if self.keys.is_empty() {
            return Ok("default".to_owned());
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim);
        let Some(presented) = presented else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "send an API key as `Authorization: Bearer <key>` or `X-API-Key`",
            ));
        };
        let hash = digest(presented.as_bytes());
        // Every key is compared, without stopping early, so timing reveals nothing.
        let mut found = None;
        for (tenant, key) in &self.keys {
            if constant_time_eq(key, &hash) {
                found = Some(tenant.clone());
            }
        }
        found.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "unknown API key",
            )
        })
    }
}

/// The caller of a `/v1` route: authenticated, and charged one request of its rate limit, before
/// the handler runs. Refused with 401, or 429 with `Retry-After`.
impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        state.auth.caller(&parts.headers)
    }
}

/// [`Caller`] of a Python-compatible route, refused in that API's error shape
/// (`{"detail": code, "message": ...}`).
pub(crate) struct CompatCaller(pub Caller);

impl FromRequestParts<Arc<AppState>> for CompatCaller {
    type Rejection = CompatError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(state.auth.caller(&parts.headers)?))
    }
}

/// [`Caller`] of `POST /api/v1/process`, refused in its result shape (`success: false`).
pub(crate) struct ProcessCaller(pub Caller);

impl FromRequestParts<Arc<AppState>> for ProcessCaller {
    type Rejection = CompatError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let caller = state
            .auth
            .caller(&parts.headers)
            .map_err(|e| CompatError::from(e).process())?;
        Ok(Self(caller))
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    diff == 0
}

/// Token bucket per tenant: `burst` requests at once, refilled at `per_minute`.
struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_sec: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token, or answers how many seconds until one is available.
    fn take(&self, tenant: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = buckets
            .entry(tenant.to_owned())
            .or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_sec).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", key.parse().unwrap());
        h
    }

    fn keys() -> Vec<ApiKey> {
        vec![
            ApiKey {
                tenant: "acme".into(),
                key: "acme-key-0123456789".into(),
            },
            ApiKey {
                tenant: "ops".into(),
                key: "ops-key-0123456789ab".into(),
            },
        ]
    }

    #[test]
    fn keys_map_to_tenants() {
        let auth = Auth::new(&keys(), &["ops".into()], 0, 0);
        let c = auth.caller(&headers("acme-key-0123456789")).unwrap();
        assert_eq!((c.tenant.as_str(), c.admin), ("acme", false));
        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            "Bearer ops-key-0123456789ab".parse().unwrap(),
        );
        let c = auth.caller(&bearer).unwrap();
        assert_eq!((c.tenant.as_str(), c.admin), ("ops", true));
        let e = auth.caller(&headers("acme-key-012345678")).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            auth.caller(&HeaderMap::new()).unwrap_err().code,
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn rate_limit_answers_429_with_retry_after() {
        let auth = Auth::new(&keys(), &[], 60, 3);
        for _ in 0..3 {
            auth.caller(&headers("acme-key-0123456789")).unwrap();
        }
        let e = auth.caller(&headers("acme-key-0123456789")).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited)
        );
        assert_eq!(e.retry_after, Some(1));
        // Another tenant has its own bucket.
        auth.caller(&headers("ops-key-0123456789ab")).unwrap();
    }
}
