//! `facecraft-worker process`: the pipeline over local files, no Redis or S3. Writes
//! `<out>/<stem>.png` / `.jpg` per input; exits non-zero if any input failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Args;
use facecraft_contract::cli::{image_files, ParamArgs};
use facecraft_contract::job::{JobParams, QualityReport, QualityWarning};

use crate::config::LimitSettings;
use facecraft_pipeline::engines::{usable_cpus, EngineSettings, Engines};
use facecraft_pipeline::portrait;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Image files, or folders whose images (jpg, jpeg, png, webp, gif, bmp, tif, tiff) are processed.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder (created if missing).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Print per-stage timings and the quality report for each file.
    #[arg(long)]
    pub timings: bool,
    /// Files processed at once; default: the CPUs this process may use (at most the number of
    /// files). ONNX Runtime's threads per inference follow (`FACECRAFT_ONNX_THREADS=auto`):
    /// the CPUs divided by this.
    #[arg(long)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    pub engines: EngineSettings,
}

/// Runs the command; the exit code is 0 only if every input produced a portrait.
pub fn run(args: &ProcessArgs) -> ExitCode {
    let started = std::time::Instant::now();
    let fail = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(2)
    };
    let params = match args.params.job_params() {
        Ok(p) => p,
        Err(e) => return fail(format!("invalid parameters: {e}")),
    };
    if let Err(e) = args.limits.validate() {
        return fail(e);
    }
    let files = match image_files(&args.inputs) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => return fail("no image files found in the inputs".into()),
        Err(e) => return fail(e),
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        return fail(format!("creating {}: {e}", args.out.display()));
    }
    let total = files.len();
    let jobs = args.jobs.unwrap_or_else(usable_cpus).clamp(1, total);
    let mut engine_settings = args.engines.clone();
    engine_settings.jobs_at_once = jobs;
    let engines = match Engines::load(&engine_settings) {
        Ok(e) => e,
        Err(e) => {
            return fail(format!(
                "loading models from {}: {e}",
                args.engines.models_dir.display()
            ))
        }
    };
    if args.timings {
        // Start → the first file can begin: arguments, the file list and every model.
        println!(
            "ready in {} ms ({jobs} at once)",
            started.elapsed().as_millis()
        );
    }
    let limits = args.limits.decode_params();
    let failed = AtomicUsize::new(0);
    let next = AtomicUsize::new(0);
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // `jobs` threads take the files in turn; each line is printed when its file is done.
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(file) = files.get(i) else {
            break;
        };
        bar.set_message(file.display().to_string());
        let label = format!("[{}/{total}] {}", i + 1, file.display());
        let line = match process_one(file, &args.out, &params, &limits, &engines) {
            Ok(done) => {
                let names: Vec<String> = done
                    .written
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                let mut line = format!("{label}: ok → {}", names.join(", "));
                if args.timings {
                    let t: Vec<String> = done
                        .timings
                        .iter()
                        .map(|(s, ms)| format!("{s} {ms} ms"))
                        .collect();
                    let sum: u64 = done.timings.iter().map(|(_, ms)| ms).sum();
                    line.push_str(&format!("\n    timings: {} (total {sum} ms)", t.join(", ")));
                    line.push_str(&format!("\n    {}", quality_line(done.quality.as_ref())));
                }
                line
            }
            Err(f) => {
                failed.fetch_add(1, Ordering::Relaxed);
                let mut line = format!("{label}: FAILED {}: {}", f.code, f.message);
                if !f.warnings.is_empty() {
                    line.push_str(&format!("\n    warnings: {}", warning_names(&f.warnings)));
                }
                line
            }
        };
        // A hidden bar (output not a terminal) swallows println; print plainly then.
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
        bar.inc(1);
    };
    std::thread::scope(|scope| {
        for _ in 1..jobs {
            scope.spawn(work);
        }
        work();
    });
    let failed = failed.into_inner();
    bar.finish_and_clear();
    println!("{} succeeded, {failed} failed", total - failed);
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

type Timings = Vec<(&'static str, u64)>;

/// What one file produced.
struct Done {
    written: Vec<PathBuf>,
    timings: Timings,
    quality: Option<QualityReport>,
}

/// Why one file produced nothing: the job error code, its message, and the quality warnings
/// of a `quality=strict` failure.
struct Failure {
    code: &'static str,
    message: String,
    warnings: Vec<QualityWarning>,
}

impl Failure {
    fn new(code: &'static str, message: String) -> Self {
        Self {
            code,
            message,
            warnings: Vec::new(),
        }
    }
}

impl From<portrait::RenderError> for Failure {
    fn from(e: portrait::RenderError) -> Self {
        let mut f = Self::new(e.code().as_str(), e.to_string());
        if let portrait::RenderError::QualityRejected(w) = e {
            f.warnings = w;
        }
        f
    }
}

fn warning_names(warnings: &[QualityWarning]) -> String {
    if warnings.is_empty() {
        return "none".to_owned();
    }
    warnings
        .iter()
        .map(|w| w.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The quality report on one line (docs/cli.md): `quality: tilt 0.4°, yaw -3.1°, eye offset
/// +0.8%, head 0.74, padded 0.0%, sharpness 182.4, luminance 131; warnings: none`.
fn quality_line(report: Option<&QualityReport>) -> String {
    let Some(q) = report else {
        return "quality: not measured".to_owned();
    };
    format!(
        "quality: tilt {:.1}°, yaw {:.1}°, eye offset {:+.1}%, head {:.2}, padded {:.1}%, \
         sharpness {:.1}, luminance {:.0}; warnings: {}",
        q.eye_tilt_deg,
        q.yaw_deg,
        q.eye_offset_pct,
        q.head_height_ratio,
        q.padded_pct,
        q.sharpness,
        q.face_luminance,
        warning_names(&q.warnings)
    )
}

fn process_one(
    file: &Path,
    out: &Path,
    params: &JobParams,
    limits: &facecraft_pipeline::decode::DecodeParams,
    engines: &Engines,
) -> Result<Done, Failure> {
    let meta =
        std::fs::metadata(file).map_err(|e| Failure::new("input_not_found", e.to_string()))?;
    if meta.len() as usize > limits.max_bytes {
        return Err(Failure::new(
            "image_too_large",
            format!(
                "{} bytes, over the {}-byte limit",
                meta.len(),
                limits.max_bytes
            ),
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| Failure::new("input_not_found", e.to_string()))?;
    let portrait = portrait::render(&bytes, params, limits, engines, &mut |_| true)?;
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("portrait");
    let mut written = Vec::new();
    for o in &portrait.outputs {
        let path = out.join(format!("{stem}.{}", o.format.extension()));
        std::fs::write(&path, &o.bytes)
            .map_err(|e| Failure::new("internal", format!("writing {}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(Done {
        written,
        timings: portrait.timings,
        quality: portrait.quality,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quality_report_fits_one_line() {
        let mut q = QualityReport {
            eye_tilt_deg: 0.44,
            yaw_deg: -3.12,
            eye_offset_pct: 0.8,
            eye_height_pct: 60.0,
            head_height_ratio: 0.7449,
            padded_pct: 0.0,
            background_uniformity: 0.97,
            sharpness: 182.44,
            face_luminance: 131.2,
            face_clipped_pct: 0.1,
            upscale: 0.5,
            warnings: Vec::new(),
        };
        assert_eq!(
            quality_line(Some(&q)),
            "quality: tilt 0.4°, yaw -3.1°, eye offset +0.8%, head 0.74, padded 0.0%, \
             sharpness 182.4, luminance 131; warnings: none"
        );
        q.warnings = vec![QualityWarning::TurnedHead, QualityWarning::LowResolution];
        assert!(quality_line(Some(&q)).ends_with("; warnings: turned_head, low_resolution"));
        assert_eq!(quality_line(None), "quality: not measured");
    }

    #[test]
    fn a_strict_failure_keeps_its_warnings() {
        let f = Failure::from(portrait::RenderError::QualityRejected(vec![
            QualityWarning::Blurry,
        ]));
        assert_eq!(f.code, "quality_rejected");
        assert_eq!(warning_names(&f.warnings), "blurry");
        assert!(Failure::from(portrait::RenderError::NoFace)
            .warnings
            .is_empty());
    }
}
