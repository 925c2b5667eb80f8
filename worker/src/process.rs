//! `facecraft-worker process`: the pipeline over local files, no Redis or S3. Writes
//! `<out>/<stem>.png` / `.jpg` per input; exits non-zero if any input failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use facecraft_shared::job::{JobParams, Rgb};
use serde_json::{Map, Value};

use crate::config::LimitSettings;
use crate::engines::{EngineSettings, Engines};
use crate::portrait;

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
    /// Output width in pixels [default: 648].
    #[arg(long)]
    pub width: Option<u32>,
    /// Output height in pixels [default: 648].
    #[arg(long)]
    pub height: Option<u32>,
    /// Background colour, "r,g,b" or "#rrggbb" [default: 240,240,240].
    #[arg(long, value_parser = |s: &str| Rgb::parse(s))]
    pub background: Option<Rgb>,
    /// Transparent background (PNG keeps alpha).
    #[arg(long)]
    pub transparent: bool,
    /// Output formats, comma-separated: png, jpg [default: png,jpg].
    #[arg(long, value_delimiter = ',')]
    pub formats: Vec<String>,
    /// Largest JPEG in bytes [default: 101376].
    #[arg(long)]
    pub jpeg_max_bytes: Option<u32>,
    /// Any other job parameter as name=value (JSON value or plain text), e.g. face_margin=0.4.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    #[command(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    pub engines: EngineSettings,
}

impl ProcessArgs {
    /// The flags as job parameters, validated like an API request.
    pub fn job_params(&self) -> Result<JobParams, String> {
        let mut m = Map::new();
        if let Some(w) = self.width {
            m.insert("width".into(), w.into());
        }
        if let Some(h) = self.height {
            m.insert("height".into(), h.into());
        }
        if let Some(b) = self.background {
            m.insert("background".into(), b.to_hex().into());
        }
        if self.transparent {
            m.insert("transparent".into(), true.into());
        }
        if !self.formats.is_empty() {
            m.insert("formats".into(), self.formats.clone().into());
        }
        if let Some(j) = self.jpeg_max_bytes {
            m.insert("jpeg_max_bytes".into(), j.into());
        }
        for p in &self.params {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("--param `{p}` is not NAME=VALUE"))?;
            let value =
                serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_owned()));
            m.insert(k.to_owned(), value);
        }
        let params: JobParams =
            serde_json::from_value(Value::Object(m)).map_err(|e| e.to_string())?;
        params.validate()?;
        Ok(params)
    }
}

const EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

fn collect(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(|e| format!("{}: {e}", input.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// Runs the command; the exit code is 0 only if every input produced a portrait.
pub fn run(args: &ProcessArgs) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(2)
    };
    let params = match args.job_params() {
        Ok(p) => p,
        Err(e) => return fail(format!("invalid parameters: {e}")),
    };
    if let Err(e) = args.limits.validate() {
        return fail(e);
    }
    let files = match collect(&args.inputs) {
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
    limits: &crate::pipeline::decode::DecodeParams,
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
