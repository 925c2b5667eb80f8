//! `facecraft-worker process`: the pipeline over local files, no Redis or S3. Writes
//! `<out>/<stem>.png` / `.jpg` per input; exits non-zero if any input failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use facecraft_contract::cli::{image_files, ParamArgs};
use facecraft_contract::job::JobParams;

use crate::config::LimitSettings;
use facecraft_pipeline::engines::{EngineSettings, Engines};
use facecraft_pipeline::portrait;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Image files, or folders whose images (jpg, jpeg, png, webp, gif, bmp, tif, tiff) are processed.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder (created if missing).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Print per-stage timings for each file.
    #[arg(long)]
    pub timings: bool,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    pub engines: EngineSettings,
}

/// Runs the command; the exit code is 0 only if every input produced a portrait.
pub fn run(args: &ProcessArgs) -> ExitCode {
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
    let engines = match Engines::load(&args.engines) {
        Ok(e) => e,
        Err(e) => {
            return fail(format!(
                "loading models from {}: {e}",
                args.engines.models_dir.display()
            ))
        }
    };
    let limits = args.limits.decode_params();
    let mut failed = 0usize;
    let total = files.len();
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for (i, file) in files.iter().enumerate() {
        bar.set_message(file.display().to_string());
        let label = format!("[{}/{total}] {}", i + 1, file.display());
        let line = match process_one(file, &args.out, &params, &limits, &engines) {
            Ok((written, timings)) => {
                let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                let mut line = format!("{label}: ok → {}", names.join(", "));
                if args.timings {
                    let t: Vec<String> = timings
                        .iter()
                        .map(|(s, ms)| format!("{s} {ms} ms"))
                        .collect();
                    let sum: u64 = timings.iter().map(|(_, ms)| ms).sum();
                    line.push_str(&format!("\n    timings: {} (total {sum} ms)", t.join(", ")));
                }
                line
            }
            Err((code, msg)) => {
                failed += 1;
                format!("{label}: FAILED {code}: {msg}")
            }
        };
        // A hidden bar (output not a terminal) swallows println; print plainly then.
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("{} succeeded, {failed} failed", total - failed);
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

type Timings = Vec<(&'static str, u64)>;

fn process_one(
    file: &Path,
    out: &Path,
    params: &JobParams,
    limits: &facecraft_pipeline::decode::DecodeParams,
    engines: &Engines,
) -> Result<(Vec<PathBuf>, Timings), (&'static str, String)> {
    let meta = std::fs::metadata(file).map_err(|e| ("input_not_found", e.to_string()))?;
    if meta.len() as usize > limits.max_bytes {
        return Err((
            "image_too_large",
            format!(
                "{} bytes, over the {}-byte limit",
                meta.len(),
                limits.max_bytes
            ),
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| ("input_not_found", e.to_string()))?;
    let portrait = portrait::render(&bytes, params, limits, engines, &mut |_| true)
        .map_err(|e| (e.code().as_str(), e.to_string()))?;
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("portrait");
    let mut written = Vec::new();
    for o in &portrait.outputs {
        let path = out.join(format!("{stem}.{}", o.format.extension()));
        std::fs::write(&path, &o.bytes)
            .map_err(|e| ("internal", format!("writing {}: {e}", path.display())))?;
        written.push(path);
    }
    Ok((written, portrait.timings))
}
