//! API keys, tenants and per-key rate limits, and the extractors that authenticate a request
//! before its handler runs: [`Caller`] for `/v1`, [`CompatCaller`] and [`ProcessCaller`] for the
//! Python-compatible routes (refused in their error shapes).
//!
//! Keys are kept only as SHA-256 digests and compared in constant time (`subtle`), so neither
//! memory dumps nor response timing give them away. Rate limits are in [`crate::ratelimit`]. Authentication is off only when the operator
//! says so (`FACECRAFT_AUTH_DISABLED=true`); then every request is tenant `default`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use facecraft_contract::ErrorCode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ApiKey;
use crate::error::{ApiError, CompatError};
use crate::ratelimit::Limiter;
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
    limiter: Option<Limiter>,
}

impl Auth {
    /// `limiter`: `None` for no rate limit.
    pub fn new(keys: &[ApiKey], admins: &[String], limiter: Option<Limiter>) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|k| (k.tenant.clone(), digest(k.key.as_bytes())))
                .collect(),
            admins: admins.iter().cloned().collect(),
            limiter,
        }
    }

    pub fn limiter(&self) -> Option<&Limiter> {
        self.limiter.as_ref()
    }

    /// Authenticates the request and charges one request to its tenant's rate limit.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let tenant = self.tenant(headers)?;
        if let Some(limiter) = &self.limiter {
            if let Err(wait_secs) = limiter.take(&tenant).await {
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
            if bool::from(key.ct_eq(&hash)) {
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
        state.auth.caller(&parts.headers).await
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
        Ok(Self(state.auth.caller(&parts.headers).await?))
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
            .await
            .map_err(|e| CompatError::from(e).process())?;
        Ok(Self(caller))
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
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

    /// A queue whose Redis is a closed port: every rate decision falls back to the local one.
    fn unreachable_queue() -> facecraft_shared::queue::Queue {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let redis = facecraft_shared::config::RedisSettings {
            url: format!("redis://{closed}"),
            prefix: "t".into(),
            pool_size: 1,
            timeout_ms: 200,
            ..Default::default()
        };
        facecraft_shared::queue::Queue::new(&redis, &Default::default()).unwrap()
    }

    #[tokio::test]
    async fn keys_map_to_tenants() {
        let auth = Auth::new(&keys(), &["ops".into()], None);
        let c = auth.caller(&headers("acme-key-0123456789")).await.unwrap();
        assert_eq!((c.tenant.as_str(), c.admin), ("acme", false));
        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            "Bearer ops-key-0123456789ab".parse().unwrap(),
        );
        let c = auth.caller(&bearer).await.unwrap();
        assert_eq!((c.tenant.as_str(), c.admin), ("ops", true));
        let e = auth
            .caller(&headers("acme-key-012345678"))
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            auth.caller(&HeaderMap::new()).await.unwrap_err().code,
            ErrorCode::Unauthorized
        );
    }

    #[tokio::test]
    async fn without_redis_the_rate_limit_holds_per_process() {
        let limiter = Limiter::new(unreachable_queue(), 60, 3);
        let auth = Auth::new(&keys(), &[], limiter);
        for _ in 0..3 {
            auth.caller(&headers("acme-key-0123456789")).await.unwrap();
        }
        let e = auth
            .caller(&headers("acme-key-0123456789"))
            .await
            .unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited)
        );
        assert_eq!(e.retry_after, Some(1));
        // Another tenant has its own budget.
        auth.caller(&headers("ops-key-0123456789ab")).await.unwrap();
        let limiter = auth.limiter().unwrap();
        assert!(limiter.degraded());
        assert_eq!(limiter.local_decisions(), 5);
    }
}
