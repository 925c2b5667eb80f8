//! Object storage on any S3-compatible server through `aws-sdk-s3`.
//!
//! Errors are sorted by what a caller can do about them: a missing object is the input's fault,
//! an unreachable server is worth retrying, anything else S3 refuses is permanent.

use std::time::Duration;

use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;

use crate::config::S3Settings;
use facecraft_contract::error::ErrorCode;
use facecraft_contract::job::ObjectRef;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object s3://{bucket}/{key} does not exist")]
    NotFound { bucket: String, key: String },
    #[error("object is {bytes} bytes, over the {limit}-byte limit")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("object storage is unavailable: {0}")]
    Unavailable(String),
    #[error("object storage refused the request: {0}")]
    Rejected(String),
    #[error("invalid storage configuration: {0}")]
    Config(String),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound { .. } => ErrorCode::InputNotFound,
            Self::TooLarge { .. } => ErrorCode::ImageTooLarge,
            Self::Unavailable(_) => ErrorCode::StorageUnavailable,
            Self::Rejected(_) | Self::Config(_) => ErrorCode::StorageRejected,
        }
    }

    fn from_sdk<E, R>(err: SdkError<E, R>, obj: Option<&ObjectRef>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let message = DisplayErrorContext(&err).to_string();
        match &err {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or_default();
                let not_found = matches!(code, "NoSuchKey" | "NotFound" | "NoSuchBucket")
                    || (code.is_empty() && message.contains("404"));
                if let (true, Some(obj)) = (not_found, obj) {
                    return Self::NotFound {
                        bucket: obj.bucket.clone(),
                        key: obj.key.clone(),
                    };
                }
                // 5xx and throttling are the server's trouble, not the request's.
                let transient = matches!(
                    code,
                    "InternalError"
                        | "ServiceUnavailable"
                        | "SlowDown"
                        | "RequestTimeout"
                        | "503"
                        | "500"
                ) || message.contains("status: 5");
                if transient {
                    Self::Unavailable(message)
                } else {
                    Self::Rejected(message)
                }
            }
            // Dispatch failures, timeouts, garbled responses: the server is down or flaky.
            _ => Self::Unavailable(message),
        }
    }
}

/// S3 client with the bucket defaults and presign lifetime from config.
#[derive(Clone)]
pub struct ObjectStore {
    client: Client,
    /// Signs presigned URLs for the public endpoint; `client` when there is none.
    presigner: Client,
    bucket: String,
    presign_expiry: Duration,
}

impl ObjectStore {
    pub async fn new(s: &S3Settings) -> Result<Self, StoreError> {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(s.timeout_secs))
            .operation_timeout(Duration::from_secs(s.timeout_secs * 3 + 5))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(s.region.clone()))
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(3));
        if let (Some(id), Some(secret)) = (&s.access_key_id, &s.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret,
                None,
                None,
                "facecraft-env",
            ));
        }
        let sdk = loader.load().await;
        let client_for = |endpoint: Option<&String>| {
            let mut conf = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(s.path_style);
            if let Some(ep) = endpoint {
                conf = conf.endpoint_url(ep);
            }
            Client::from_conf(conf.build())
        };
        let client = client_for(s.endpoint.as_ref());
        // Presigning is local computation; this client never opens a connection.
        let presigner = match &s.public_endpoint {
            Some(public) => client_for(Some(public)),
            None => client.clone(),
        };
        Ok(Self {
            client,
            presigner,
            bucket: s.bucket.clone(),
            presign_expiry: Duration::from_secs(s.presign_expiry_secs),
        })
    }

    /// The configured default bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn presign_expiry(&self) -> Duration {
        self.presign_expiry
    }

    /// Reads a whole object, refusing objects over `max_bytes` before downloading them.
    pub async fn get(&self, obj: &ObjectRef, max_bytes: u64) -> Result<Bytes, StoreError> {
        let resp = self
            .client
            .get_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(e, Some(obj)))?;
        let declared = resp.content_length().unwrap_or(0).max(0) as u64;
        if declared > max_bytes {
            return Err(StoreError::TooLarge {
                bytes: declared,
                limit: max_bytes,
            });
        }
        let data = resp
            .body
            .collect()
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("reading s3://{}/{}: {e}", obj.bucket, obj.key))
            })?
            .into_bytes();
        if data.len() as u64 > max_bytes {
            return Err(StoreError::TooLarge {
                bytes: data.len() as u64,
                limit: max_bytes,
            });
        }
        Ok(data)
    }

    pub async fn put(
        &self,
        obj: &ObjectRef,
        data: Bytes,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .content_type(content_type)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(e, None))?;
        Ok(())
    }

    /// Size of an object, or `None` when it does not exist.
    pub async fn head(&self, obj: &ObjectRef) -> Result<Option<u64>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .send()
            .await
        {
            Ok(h) => Ok(Some(h.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) => match StoreError::from_sdk(e, Some(obj)) {
                StoreError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    pub async fn delete(&self, obj: &ObjectRef) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(e, None))?;
        Ok(())
    }

    /// Keys under `prefix`, at most `limit` of them.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        limit: i32,
    ) -> Result<Vec<String>, StoreError> {
        let resp = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(limit)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(e, None))?;
        Ok(resp
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect())
    }

    fn presigning(&self) -> Result<PresigningConfig, StoreError> {
        PresigningConfig::expires_in(self.presign_expiry)
            .map_err(|e| StoreError::Config(e.to_string()))
    }

    /// A URL anyone can GET the object with until it expires.
    pub async fn presign_get(&self, obj: &ObjectRef) -> Result<String, StoreError> {
        let req = self
            .presigner
            .get_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .presigned(self.presigning()?)
            .await
            .map_err(|e| StoreError::from_sdk(e, None))?;
        Ok(req.uri().to_owned())
    }

    /// A URL anyone can PUT the object with until it expires.
    pub async fn presign_put(
        &self,
        obj: &ObjectRef,
        content_type: Option<&str>,
    ) -> Result<String, StoreError> {
        let req = self
            .presigner
            .put_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_content_type(content_type.map(str::to_owned))
            .presigned(self.presigning()?)
            .await
            .map_err(|e| StoreError::from_sdk(e, None))?;
        Ok(req.uri().to_owned())
    }

    /// Readiness: the default bucket answers.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk(e, None))?;
        Ok(())
    }

    /// Creates a bucket unless it exists (dev stacks and tests).
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        match self.client.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let code = e
                    .as_service_error()
                    .and_then(|s| s.code())
                    .unwrap_or_default();
                if matches!(code, "BucketAlreadyOwnedByYou" | "BucketAlreadyExists") {
                    Ok(())
                } else {
                    Err(StoreError::from_sdk(e, None))
                }
            }
        }
    }
}
