//! `facecraft`: a command-line client of a running Facecraft API.
//!
//! `facecraft submit photo.jpg more/ --wait --out portraits/` uploads each image as a job
//! (several at once), follows each job with a progress bar on a terminal, and downloads the
//! finished portraits. One result line per file goes to stdout, tab-separated:
//! `STATE  FILE  JOB_ID  DETAIL`, plus a fifth column `QUALITY` when the job ended with a
//! quality report or quality warnings, so scripts can read it; progress bars go to stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use facecraft_contract::cli::{image_files, ParamArgs};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Semaphore;

/// Command line of `facecraft`.
#[derive(Debug, Parser)]
#[command(name = "facecraft", version, about = "Client of a Facecraft API")]
pub struct Cli {
    /// Base URL of the API.
    #[arg(
        long,
        env = "FACECRAFT_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api: String,
    /// API key, sent as `Authorization: Bearer`; not needed when the API runs without auth.
    #[arg(long, env = "FACECRAFT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload images as jobs; with --wait (or --out) follow them and download the results.
    Submit(SubmitArgs),
    /// Print a job's status record as JSON.
    Status {
        /// The job id `submit` printed.
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Image files, or folders whose images (jpg, jpeg, png, webp, gif, bmp, tif, tiff) are sent.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Wait until each job ends and report how it ended.
    #[arg(long)]
    pub wait: bool,
    /// Download the portraits here as `<stem>.png` / `<stem>.jpg` (implies --wait).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Files in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,
    /// Longest wait for one job, in seconds, counted from its upload.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

/// Why a file did not become a portrait on disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("cannot read the file: {0}")]
    Unreadable(String),
    #[error("the API at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the API refused the request ({status}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the job ended {state}: {message}")]
    JobFailed {
        state: String,
        code: String,
        message: String,
    },
    #[error("the job had not ended after {0} s")]
    Timeout(u64),
    #[error("downloading the result failed: {0}")]
    Download(String),
    #[error("writing {path}: {reason}")]
    Write { path: String, reason: String },
}

impl CliError {
    /// Stable code: the API's own error code where there is one.
    pub fn code(&self) -> &str {
        match self {
            Self::Unreadable(_) => "file_unreadable",
            Self::Unreachable { .. } => "api_unreachable",
            Self::Rejected { code, .. } | Self::JobFailed { code, .. } => code,
            Self::Timeout(_) => "wait_timeout",
            Self::Download(_) => "download_failed",
            Self::Write { .. } => "write_failed",
        }
    }
}

/// How one input ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub file: PathBuf,
    /// The job id, once the API accepted the upload.
    pub job_id: Option<String>,
    /// Final state when waited for, else what the API answered to the upload (`queued`).
    pub state: Option<String>,
    /// Files written under `--out`.
    pub written: Vec<PathBuf>,
    pub error: Option<CliError>,
    /// The quality report of a succeeded job, when it was waited for and the API sent one.
    pub quality: Option<Quality>,
    /// The quality warnings that failed a `quality=strict` job (`quality_rejected`).
    pub warnings: Vec<String>,
}

impl Outcome {
    fn line(&self) -> String {
        let state = match (&self.error, &self.state) {
            (_, Some(s)) => s.as_str(),
            (Some(_), None) => "error",
            (None, None) => "unknown",
        };
        let detail = match &self.error {
            Some(e) => format!("{}: {e}", e.code()),
            None => self
                .written
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let mut line = format!(
            "{state}\t{}\t{}\t{detail}",
            self.file.display(),
            self.job_id.as_deref().unwrap_or("-")
        );
        if let Some(q) = &self.quality {
            line.push_str(&format!("\t{}", q.summary()));
        } else if !self.warnings.is_empty() {
            line.push_str(&format!("\twarnings: {}", self.warnings.join(", ")));
        }
        line
    }

    /// Whether this input got what was asked for.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The parts of a status record the client reads. Deliberately lenient (no unknown-field
/// rejection, state as text), so an older client keeps working against a newer API.
#[derive(Debug, Clone, Deserialize)]
pub struct JobStatus {
    pub id: String,
    pub state: String,
    #[serde(default)]
    pub progress: Option<Progress>,
    #[serde(default)]
    pub error: Option<JobFailure>,
    #[serde(default)]
    pub result: Option<JobResult>,
}

impl JobStatus {
    fn ended(&self) -> bool {
        !matches!(self.state.as_str(), "queued" | "running")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Progress {
    pub stage: String,
    pub percent: u8,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobFailure {
    pub code: String,
    pub message: String,
    /// The quality warnings that failed a `quality=strict` job.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The part of a succeeded job's `result` the client reads.
#[derive(Debug, Clone, Deserialize)]
pub struct JobResult {
    #[serde(default)]
    pub quality: Option<Quality>,
}

/// A job's quality report (`QualityReport` of the API), read leniently: every measurement is
/// optional and warnings are plain names, so a newer API's additions do not break this client.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Quality {
    #[serde(default)]
    pub eye_tilt_deg: Option<f64>,
    #[serde(default)]
    pub yaw_deg: Option<f64>,
    #[serde(default)]
    pub eye_offset_pct: Option<f64>,
    #[serde(default)]
    pub head_height_ratio: Option<f64>,
    #[serde(default)]
    pub padded_pct: Option<f64>,
    #[serde(default)]
    pub sharpness: Option<f64>,
    #[serde(default)]
    pub face_luminance: Option<f64>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Quality {
    /// One line, the same as `facecraft-worker process --timings` prints: `quality: tilt 0.4°,
    /// yaw -3.1°, eye offset +0.8%, head 0.74, padded 0.0%, sharpness 182.4, luminance 131;
    /// warnings: none`. A measurement the API did not send is left out.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            self.eye_tilt_deg.map(|v| format!("tilt {v:.1}°")),
            self.yaw_deg.map(|v| format!("yaw {v:.1}°")),
            self.eye_offset_pct.map(|v| format!("eye offset {v:+.1}%")),
            self.head_height_ratio.map(|v| format!("head {v:.2}")),
            self.padded_pct.map(|v| format!("padded {v:.1}%")),
            self.sharpness.map(|v| format!("sharpness {v:.1}")),
            self.face_luminance.map(|v| format!("luminance {v:.0}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let warnings = if self.warnings.is_empty() {
            "none".to_owned()
        } else {
            self.warnings.join(", ")
        };
        if parts.is_empty() {
            format!("quality: warnings: {warnings}")
        } else {
            format!("quality: {}; warnings: {warnings}", parts.join(", "))
        }
    }
}

/// HTTP side of the client: one pooled client for the API, one without credentials for the
/// presigned S3 URLs the API redirects to.
#[derive(Clone)]
pub struct Client {
    base: String,
    api: reqwest::Client,
    plain: reqwest::Client,
}

/// Retries of a refused or failed upload (429/503 with Retry-After, connection errors).
const SUBMIT_ATTEMPTS: u32 = 6;
const POLL_EVERY: Duration = Duration::from_millis(500);

impl Client {
    pub fn new(base: &str, api_key: Option<&str>) -> Result<Self, String> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("--api `{base}` must be an http:// or https:// URL"));
        }
        let mut headers = HeaderMap::new();
        if let Some(key) = api_key {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| "the API key has characters a header cannot carry".to_owned())?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let api = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            // The result route redirects to S3; that hop must not carry our credentials.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let plain = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { base, api, plain })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, e: reqwest::Error) -> CliError {
        CliError::Unreachable {
            url: self.base.clone(),
            reason: e.without_url().to_string(),
        }
    }

    /// Uploads one image; answers the job's first status record.
    pub async fn submit(&self, file: &Path, params_json: &str) -> Result<JobStatus, CliError> {
        let bytes = tokio::fs::read(file)
            .await
            .map_err(|e| CliError::Unreadable(e.to_string()))?;
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("image")
            .to_owned();
        for attempt in 1..=SUBMIT_ATTEMPTS {
            let delay = facecraft_contract::retry::backoff(
                Duration::from_millis(500),
                Duration::from_secs(10),
                attempt,
            );
            let form = reqwest::multipart::Form::new()
                .part(
                    "image",
                    reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone()),
                )
                .text("params", params_json.to_owned());
            let last = attempt == SUBMIT_ATTEMPTS;
            match self
                .api
                .post(self.url("/v1/jobs"))
                .multipart(form)
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => {
                    return resp.json().await.map_err(|e| CliError::Rejected {
                        status: 200,
                        code: "invalid_response".into(),
                        message: e.to_string(),
                    });
                }
                Ok(resp)
                    if !last
                        && matches!(
                            resp.status(),
                            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                        ) =>
                {
                    tokio::time::sleep(retry_after(resp.headers()).unwrap_or(delay)).await;
                }
                Ok(resp) => return Err(rejected(resp).await),
                Err(e) if !last && (e.is_connect() || e.is_timeout()) => {
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(self.unreachable(e)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The job's status record.
    pub async fn status(&self, id: &str) -> Result<JobStatus, CliError> {
        let raw = self.status_json(id).await?;
        serde_json::from_value(raw).map_err(|e| CliError::Rejected {
            status: 200,
            code: "invalid_response".into(),
            message: e.to_string(),
        })
    }

    /// The job's status record as the API sent it.
    pub async fn status_json(&self, id: &str) -> Result<Value, CliError> {
        let resp = self
            .api
            .get(self.url(&format!("/v1/jobs/{id}")))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(rejected(resp).await);
        }
        resp.json().await.map_err(|e| CliError::Rejected {
            status: 200,
            code: "invalid_response".into(),
            message: e.to_string(),
        })
    }

    /// Polls until the job ends or `deadline`; `on_progress` sees every record. Transient
    /// failures (connection, 5xx, 429) are retried until the deadline.
    pub async fn wait(
        &self,
        id: &str,
        deadline: Instant,
        timeout_secs: u64,
        mut on_progress: impl FnMut(&JobStatus),
    ) -> Result<JobStatus, CliError> {
        loop {
            match self.status(id).await {
                Ok(s) => {
                    on_progress(&s);
                    if s.ended() {
                        return Ok(s);
                    }
                }
                Err(CliError::Rejected { status, .. }) if status >= 500 || status == 429 => {}
                Err(CliError::Unreachable { .. }) => {}
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Err(CliError::Timeout(timeout_secs));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Downloads one result format (`png`, `jpg` or `webp`) of a succeeded job.
    pub async fn download(&self, id: &str, format: &str) -> Result<Vec<u8>, CliError> {
        let resp = self
            .api
            .get(self.url(&format!("/v1/jobs/{id}/result/{format}")))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let resp = if resp.status().is_redirection() {
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| CliError::Download("redirect without a Location".into()))?
                .to_owned();
            self.plain
                .get(&location)
                .send()
                .await
                .map_err(|e| CliError::Download(e.without_url().to_string()))?
        } else {
            resp
        };
        if !resp.status().is_success() {
            return Err(match rejected(resp).await {
                CliError::Rejected {
                    status, message, ..
                } => CliError::Download(format!("{status}: {message}")),
                other => other,
            });
        }
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| CliError::Download(e.without_url().to_string()))
    }
}

/// Seconds of a `Retry-After` header, capped at a minute.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.clamp(1, 60)))
}

/// The API's `{error, code}` body as an error.
async fn rejected(resp: reqwest::Response) -> CliError {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    CliError::Rejected {
        status,
        code: body["code"].as_str().unwrap_or("http_error").to_owned(),
        message: body["error"]
            .as_str()
            .map_or_else(|| format!("HTTP {status}"), str::to_owned),
    }
}

/// Runs `submit`: every input in its own task, at most `--parallel` at once. Result lines go
/// to stdout as each file ends; the outcomes come back in input order.
pub async fn submit(client: &Client, args: &SubmitArgs) -> Result<Vec<Outcome>, String> {
    let params = args
        .params
        .job_params()
        .map_err(|e| format!("invalid parameters: {e}"))?;
    let params_json = serde_json::to_string(&params).map_err(|e| e.to_string())?;
    let files = image_files(&args.inputs)?;
    if files.is_empty() {
        return Err("no image files found in the inputs".into());
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    }
    let wait = args.wait || args.out.is_some();
    let formats: Vec<&'static str> = params.formats.iter().map(|f| f.extension()).collect();
    let stems = output_stems(&files);
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:30!} {bar:24} {pos:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let gate = Arc::new(Semaphore::new(args.parallel as usize));
    let mut tasks = Vec::new();
    for (file, stem) in files.into_iter().zip(stems) {
        let bar = bars.add(ProgressBar::new(100));
        bar.set_style(style.clone());
        bar.set_prefix(file.display().to_string());
        bar.set_message("waiting");
        let job = FileJob {
            client: client.clone(),
            file,
            stem,
            params_json: params_json.clone(),
            wait,
            out: args.out.clone(),
            formats: formats.clone(),
            timeout_secs: args.timeout_secs,
            bar,
        };
        let gate = gate.clone();
        let bars = bars.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let outcome = job.run().await;
            job.bar.finish_and_clear();
            let line = outcome.line();
            // A hidden bar set (not a terminal) swallows println; print plainly then.
            if bars.println(&line).is_err() || job.bar.is_hidden() {
                println!("{line}");
            }
            outcome
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await.map_err(|e| format!("a file's task failed: {e}"))?);
    }
    Ok(outcomes)
}

struct FileJob {
    client: Client,
    file: PathBuf,
    stem: String,
    params_json: String,
    wait: bool,
    out: Option<PathBuf>,
    formats: Vec<&'static str>,
    timeout_secs: u64,
    bar: ProgressBar,
}

impl FileJob {
    async fn run(&self) -> Outcome {
        let mut outcome = Outcome {
            file: self.file.clone(),
            job_id: None,
            state: None,
            written: Vec::new(),
            error: None,
            quality: None,
            warnings: Vec::new(),
        };
        self.bar.set_message("uploading");
        let started = Instant::now();
        let status = match self.client.submit(&self.file, &self.params_json).await {
            Ok(s) => s,
            Err(e) => {
                outcome.error = Some(e);
                return outcome;
            }
        };
        let id = status.id.clone();
        outcome.job_id = Some(id.clone());
        outcome.state = Some(status.state);
        if !self.wait {
            return outcome;
        }
        let deadline = started + Duration::from_secs(self.timeout_secs);
        let bar = self.bar.clone();
        let done = self
            .client
            .wait(&id, deadline, self.timeout_secs, |s| match &s.progress {
                Some(p) => {
                    bar.set_position(u64::from(p.percent));
                    bar.set_message(p.stage.clone());
                }
                None => bar.set_message(s.state.clone()),
            })
            .await;
        let done = match done {
            Ok(s) => s,
            Err(e) => {
                outcome.error = Some(e);
                return outcome;
            }
        };
        outcome.state = Some(done.state.clone());
        outcome.quality = done.result.and_then(|r| r.quality);
        if done.state != "succeeded" {
            let (code, message) = done.error.map_or_else(
                || (done.state.clone(), "no error recorded".to_owned()),
                |e| {
                    outcome.warnings = e.warnings;
                    (e.code, e.message)
                },
            );
            outcome.error = Some(CliError::JobFailed {
                state: done.state,
                code,
                message,
            });
            return outcome;
        }
        let Some(out) = &self.out else {
            return outcome;
        };
        self.bar.set_message("downloading");
        for format in &self.formats {
            let bytes = match self.client.download(&id, format).await {
                Ok(b) => b,
                Err(e) => {
                    outcome.error = Some(e);
                    return outcome;
                }
            };
            let path = out.join(format!("{}.{format}", self.stem));
            if let Err(e) = tokio::fs::write(&path, &bytes).await {
                outcome.error = Some(CliError::Write {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
                return outcome;
            }
            outcome.written.push(path);
        }
        outcome
    }
}

/// Output names: each file's stem, with `-2`, `-3`, ... where stems repeat (`a/x.jpg` and
/// `b/x.png` must not overwrite each other).
fn output_stems(files: &[PathBuf]) -> Vec<String> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    files
        .iter()
        .map(|f| {
            let stem = f
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| !s.is_empty())
                .unwrap_or("portrait")
                .to_owned();
            let n = seen.entry(stem.to_lowercase()).or_insert(0);
            *n += 1;
            if *n == 1 {
                stem
            } else {
                format!("{stem}-{n}")
            }
        })
        .collect()
}

/// Runs the command line; the exit code is 0 when every input got what was asked for, 1 when
/// any did not, 2 for a usage or configuration error.
pub async fn run(cli: Cli) -> std::process::ExitCode {
    use std::process::ExitCode;
    let client = match Client::new(&cli.api, cli.api_key.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Status { id } => match client.status_json(&id).await {
            Ok(s) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&s).unwrap_or_else(|e| e.to_string())
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}: {e}", e.code());
                ExitCode::FAILURE
            }
        },
        Command::Submit(args) => match submit(&client, &args).await {
            Ok(outcomes) => {
                let failed = outcomes.iter().filter(|o| !o.ok()).count();
                eprintln!("{} ok, {failed} failed", outcomes.len() - failed);
                if failed > 0 {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_stems_get_numbered() {
        let files: Vec<PathBuf> = ["a/x.jpg", "b/x.png", "c/X.webp", "y.jpg"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(output_stems(&files), ["x", "x-2", "X-3", "y"]);
    }

    #[test]
    fn retry_after_is_read_and_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("100000"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(60)));
    }

    #[test]
    fn the_api_url_must_be_http() {
        assert!(Client::new("127.0.0.1:8080", None).is_err());
        assert!(Client::new("http://127.0.0.1:8080/", None).is_ok());
        assert!(Client::new("http://x", Some("bad\nkey")).is_err());
    }

    #[test]
    fn result_lines_are_tab_separated() {
        let o = Outcome {
            file: "me.jpg".into(),
            job_id: Some("0193".into()),
            state: Some("failed".into()),
            written: vec![],
            error: Some(CliError::JobFailed {
                state: "failed".into(),
                code: "no_face_detected".into(),
                message: "no face".into(),
            }),
            quality: None,
            warnings: vec![],
        };
        assert_eq!(
            o.line(),
            "failed\tme.jpg\t0193\tno_face_detected: the job ended failed: no face"
        );
    }

    #[test]
    fn quality_reports_and_warnings_are_a_fifth_column() {
        let status: JobStatus = serde_json::from_value(serde_json::json!({
            "id": "0193",
            "state": "succeeded",
            "result": {
                "outputs": [],
                "timings_ms": {},
                "quality": {
                    "eye_tilt_deg": 0.44, "yaw_deg": -3.12, "eye_offset_pct": 0.8,
                    "eye_height_pct": 60.0, "head_height_ratio": 0.7449, "padded_pct": 0.0,
                    "background_uniformity": 0.97, "sharpness": 182.44, "face_luminance": 131.2,
                    "face_clipped_pct": 0.1, "upscale": 0.5, "some_future_measure": 1,
                    "warnings": ["turned_head", "a_future_warning"]
                }
            }
        }))
        .unwrap();
        let o = Outcome {
            file: "me.jpg".into(),
            job_id: Some("0193".into()),
            state: Some("succeeded".into()),
            written: vec!["out/me.png".into()],
            error: None,
            quality: status.result.and_then(|r| r.quality),
            warnings: vec![],
        };
        assert_eq!(
            o.line(),
            "succeeded\tme.jpg\t0193\tout/me.png\tquality: tilt 0.4°, yaw -3.1°, \
             eye offset +0.8%, head 0.74, padded 0.0%, sharpness 182.4, luminance 131; \
             warnings: turned_head, a_future_warning"
        );

        let failed: JobStatus = serde_json::from_value(serde_json::json!({
            "id": "0193",
            "state": "failed",
            "error": {"code": "quality_rejected", "message": "fails", "warnings": ["blurry", "dark"]}
        }))
        .unwrap();
        let e = failed.error.unwrap();
        let o = Outcome {
            file: "me.jpg".into(),
            job_id: Some("0193".into()),
            state: Some("failed".into()),
            written: vec![],
            error: Some(CliError::JobFailed {
                state: "failed".into(),
                code: e.code,
                message: e.message,
            }),
            quality: None,
            warnings: e.warnings,
        };
        assert_eq!(
            o.line(),
            "failed\tme.jpg\t0193\tquality_rejected: the job ended failed: fails\t\
             warnings: blurry, dark"
        );
        assert_eq!(Quality::default().summary(), "quality: warnings: none");
    }
}
