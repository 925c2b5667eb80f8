//! ONNX Runtime plumbing shared by the ONNX engines (U²-Net, RetinaFace): loading the runtime
//! library once per process, opening model files into sessions, and mapping `ort` errors onto
//! [`EngineError`]. The runtime is loaded at run time (`ort`'s `load-dynamic`), never linked.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use crate::face::EngineError;

/// Environment variable naming the ONNX Runtime shared library (`ort`'s own convention).
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The process-wide runtime: the library it came from and the one `ort` environment.
struct Runtime {
    library: PathBuf,
    env: Environment,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Serialises first-time loading; `RUNTIME` only ever holds a success, so a failed `init` can
/// be retried (say, after the operator fixes the path).
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime from `dylib`, or from `$ORT_DYLIB_PATH` when `None`.
///
/// Idempotent: once a library is loaded, `init(None)` and `init` with the same file return
/// `Ok`. A process can hold only one runtime, so naming a *different* file afterwards is an
/// error. Never panics: a missing or unloadable library is [`EngineError::ModelUnavailable`]
/// naming the file.
pub fn init(dylib: Option<&Path>) -> Result<(), EngineError> {
    let Some(explicit) = dylib else {
        if RUNTIME.get().is_some() {
            return Ok(());
        }
        let from_env = std::env::var_os(DYLIB_ENV).filter(|v| !v.is_empty());
        return match from_env {
            Some(path) => load_runtime(Path::new(&path)),
            None => Err(library_error(
                Path::new("libonnxruntime.so"),
                format!("no ONNX Runtime library configured: set {DYLIB_ENV} or pass its path"),
            )),
        };
    };
    load_runtime(explicit)
}

fn load_runtime(path: &Path) -> Result<(), EngineError> {
    // Checked first so that the answer does not depend on what loaded earlier, and because
    // `ort` resolves relative paths against the executable's folder, panicking if it has none.
    if !path.is_file() {
        return Err(library_error(path, "ONNX Runtime library not found"));
    }
    if let Some(runtime) = RUNTIME.get() {
        return check_same_library(runtime, path);
    }
    let _guard = INIT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(runtime) = RUNTIME.get() {
        return check_same_library(runtime, path);
    }
    let library = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());

    // `ort` panics rather than returning an error in a few places (an unloadable library met
    // through `ort::api()`, a null pointer from the runtime); keep such a panic in here.
    let built = panic::catch_unwind(AssertUnwindSafe(|| {
        ort::init_from(&library)
            .map_err(|e| e.to_string())?
            .with_name("facecraft")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    }));
    let env = match built {
        Ok(Ok(env)) => env,
        Ok(Err(reason)) => {
            return Err(library_error(
                &library,
                format!("cannot load ONNX Runtime: {reason}"),
            ))
        }
        Err(payload) => {
            return Err(library_error(
                &library,
                format!(
                    "loading ONNX Runtime panicked: {}",
                    panic_message(payload.as_ref())
                ),
            ))
        }
    };
    // Only this function sets RUNTIME, under INIT_LOCK, so the slot is still empty here.
    let _ = RUNTIME.set(Runtime { library, env });
    Ok(())
}

/// The library ONNX Runtime was loaded from, once [`init`] has succeeded.
pub fn loaded_library() -> Option<&'static Path> {
    RUNTIME.get().map(|rt| rt.library.as_path())
}

fn check_same_library(runtime: &Runtime, path: &Path) -> Result<(), EngineError> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if canonical == runtime.library {
        Ok(())
    } else {
        Err(library_error(
            path,
            format!(
                "ONNX Runtime is already loaded from {}; a process can load only one",
                runtime.library.display()
            ),
        ))
    }
}

fn environment() -> Result<&'static Environment, EngineError> {
    if RUNTIME.get().is_none() {
        init(None)?;
    }
    RUNTIME
        .get()
        .map(|rt| &rt.env)
        .ok_or_else(|| EngineError::NotLoaded("ONNX Runtime".into()))
}

fn library_error(path: &Path, reason: impl Into<String>) -> EngineError {
    EngineError::ModelUnavailable {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// A [`EngineError::ModelUnavailable`] for a model file.
pub(crate) fn model_error(path: &Path, reason: impl Into<String>) -> EngineError {
    EngineError::ModelUnavailable {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Session settings shared by every ONNX model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxParams {
    /// Threads one inference may use (ONNX Runtime's intra-op pool). Default 1: a worker runs
    /// several jobs at once, and they scale better across jobs than inside one. 0 lets ONNX
    /// Runtime pick (one per physical core).
    pub intra_threads: usize,
    /// Where sessions run (`FACECRAFT_DEVICE`).
    pub device: super::Device,
    /// Cross-job batching of the models that support it (U²-Net, RetinaFace).
    pub batch: crate::batch::BatchSettings,
    /// The CPU provider's memory arena (`FACECRAFT_ONNX_ARENA`): on by default; off returns
    /// each inference's buffers to the allocator. With glibc's mmap threshold fixed (as the
    /// images do) that took u2net's peak from 615 to 488 MiB and u2netp's from 381 to 323, at
    /// 1.25× (u2net) to 1.4× (u2netp) the segmentation time.
    pub cpu_arena: bool,
}

impl Default for OnnxParams {
    fn default() -> Self {
        Self {
            intra_threads: 1,
            device: super::Device::Cpu,
            batch: crate::batch::BatchSettings {
                max: 1,
                wait: std::time::Duration::ZERO,
            },
            cpu_arena: true,
        }
    }
}

/// One f32 output tensor, copied out of the runtime.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorF32 {
    pub shape: Vec<i64>,
    pub data: Vec<f32>,
}

/// A model file opened in ONNX Runtime, usable from many threads.
///
/// `ort` 2.0.0-rc.15's `Session::run` takes `&mut self` (some runtime internals are not
/// thread-safe), so the session sits behind a `Mutex`: concurrent jobs take turns on one
/// model. Load one engine per worker thread if inference contention ever shows in the stage
/// timings.
pub(crate) struct OnnxSession {
    session: Mutex<Session>,
    path: PathBuf,
    /// `cpu` or `cuda`: where the session got its execution provider.
    device: &'static str,
    inputs: Vec<String>,
    outputs: Vec<String>,
    input_shapes: Vec<Option<Vec<i64>>>,
    output_shapes: Vec<Option<Vec<i64>>>,
}

impl std::fmt::Debug for OnnxSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxSession")
            .field("path", &self.path)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl OnnxSession {
    /// Opens `path`, loading the runtime from `$ORT_DYLIB_PATH` if [`init`] was not called.
    /// A missing or malformed file is [`EngineError::ModelUnavailable`] naming it.
    pub(crate) fn load(path: &Path, params: &OnnxParams) -> Result<Self, EngineError> {
        if !path.is_file() {
            return Err(model_error(path, "no such file"));
        }
        use super::Device;
        match params.device {
            Device::Cpu => Self::load_on(path, params, false),
            Device::Cuda => Self::load_on(path, params, true),
            Device::Auto if cfg!(feature = "cuda") => {
                Self::load_on(path, params, true).or_else(|e| match e {
                    EngineError::DeviceUnavailable(why) => {
                        tracing::warn!(
                            model = %path.display(),
                            reason = why,
                            "FACECRAFT_DEVICE=auto: CUDA cannot be used, running on the CPU"
                        );
                        Self::load_on(path, params, false)
                    }
                    other => Err(other),
                })
            }
            Device::Auto => Self::load_on(path, params, false),
        }
    }

    /// Opens `path` on the CPU, or with ONNX Runtime's CUDA provider, which must register
    /// (its failure is [`EngineError::DeviceUnavailable`]; ONNX Runtime would otherwise fall
    /// back to the CPU with no more than a log line).
    fn load_on(path: &Path, params: &OnnxParams, cuda: bool) -> Result<Self, EngineError> {
        let env = environment()?;
        let builder_error = |e: ort::Error<_>| model_error(path, format!("session options: {e}"));
        let builder = Session::builder(env)
            .map_err(|e| model_error(path, format!("session builder: {e}")))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(builder_error)?
            .with_intra_threads(params.intra_threads)
            .map_err(builder_error)?
            // Graph branches run one after another; parallelism, if any, is intra-op.
            .with_inter_threads(1)
            .map_err(builder_error)?
            // Spinning pool threads would burn cores that the worker's other jobs need.
            .with_intra_op_spinning(false)
            .map_err(builder_error)?
            // Memory patterns pre-plan one buffer layout per input shape and keep it; RetinaFace's
            // dynamic input makes a new one per photo size. Off, a worker's peak over several
            // photos fell from 586 to 382 MiB (u2netp) and 1130 to 820 (u2net) for 2-4 % more
            // segmentation time (docs/operations.md, "Memory").
            .with_memory_pattern(false)
            .map_err(builder_error)?;
        #[cfg(feature = "cuda")]
        let builder = if cuda {
            builder
                .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                .map_err(|e| {
                    EngineError::DeviceUnavailable(format!(
                        "ONNX Runtime's CUDA provider does not register for {}: {e}",
                        path.display()
                    ))
                })?
        } else {
            builder
        };
        #[cfg(not(feature = "cuda"))]
        if cuda {
            return Err(EngineError::DeviceUnavailable(
                "this build has no CUDA support (the worker-gpu image has; cargo feature `cuda`)"
                    .into(),
            ));
        }
        // Providers append in order: the CPU, after CUDA if registered, runs every node CUDA
        // does not take. Its arena keeps the largest inference's buffers for the next one:
        // faster, at a resident cost the size of the model's activations (FACECRAFT_ONNX_ARENA).
        let cpu_ep = ort::ep::CPU::default().with_arena_allocator(params.cpu_arena);
        let mut builder = builder
            .with_execution_providers([cpu_ep.build()])
            .map_err(builder_error)?;
        let session = builder
            .commit_from_file(path)
            .map_err(|e| model_error(path, format!("not a loadable ONNX model: {e}")))?;
        let names = |outlets: &[ort::value::Outlet]| -> Vec<String> {
            outlets.iter().map(|o| o.name().to_owned()).collect()
        };
        // Declared tensor shapes, -1 for dynamic dimensions.
        let shapes = |outlets: &[ort::value::Outlet]| -> Vec<Option<Vec<i64>>> {
            outlets
                .iter()
                .map(|o| Some(o.dtype().tensor_shape()?.iter().copied().collect()))
                .collect()
        };
        Ok(Self {
            path: path.to_path_buf(),
            device: if cuda { "cuda" } else { "cpu" },
            inputs: names(session.inputs()),
            outputs: names(session.outputs()),
            input_shapes: shapes(session.inputs()),
            output_shapes: shapes(session.outputs()),
            session: Mutex::new(session),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn device(&self) -> &'static str {
        self.device
    }

    pub(crate) fn input_names(&self) -> &[String] {
        &self.inputs
    }

    pub(crate) fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// The declared shape of input `index` (-1 for a dynamic dimension), if it is a tensor.
    pub(crate) fn input_shape(&self, index: usize) -> Option<&[i64]> {
        self.input_shapes.get(index)?.as_deref()
    }

    /// The declared shape of output `index` (-1 for a dynamic dimension), if it is a tensor.
    pub(crate) fn output_shape(&self, index: usize) -> Option<&[i64]> {
        self.output_shapes.get(index)?.as_deref()
    }

    /// Runs the model on one f32 input tensor and copies out the named f32 outputs, in the
    /// order asked.
    pub(crate) fn run_f32(
        &self,
        shape: &[usize],
        input: &[f32],
        outputs: &[&str],
    ) -> Result<Vec<TensorF32>, EngineError> {
        let model = self.path.display();
        let tensor = TensorRef::from_array_view((shape, input))
            .map_err(|e| EngineError::Inference(format!("{model}: input tensor: {e}")))?;
        let mut session = self.lock();
        let results = session
            .run(ort::inputs![tensor])
            .map_err(|e| EngineError::Inference(format!("{model}: {e}")))?;
        outputs
            .iter()
            .map(|name| {
                let value = results.get(*name).ok_or_else(|| {
                    EngineError::Inference(format!("{model}: no output named `{name}`"))
                })?;
                let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| {
                    EngineError::Inference(format!("{model}: output `{name}`: {e}"))
                })?;
                Ok(TensorF32 {
                    shape: shape.iter().copied().collect(),
                    data: data.to_vec(),
                })
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Session> {
        // A panic while holding the lock cannot leave the session half-updated on our side;
        // the next job may use it.
        self.session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Locating models, the runtime and test photos for the engines' tests. Tests that need them
/// fail with a message saying where they looked; they never skip silently.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};

    use super::OnnxParams;

    fn manifest_dir() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// `$FACECRAFT_MODELS_DIR` when set (and then only it), else `models/files` of the
    /// workspace, where `scripts/fetch-models` puts them.
    pub(crate) fn models_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("FACECRAFT_MODELS_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let candidates = [
            manifest_dir().join("../models/files"),
            manifest_dir().join("models/files"),
        ];
        candidates
            .iter()
            .find(|dir| dir.is_dir())
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no models folder: set FACECRAFT_MODELS_DIR or run scripts/fetch-models \
                     (looked in {candidates:?})"
                )
            })
    }

    /// A model file from [`models_dir`]; panics naming it when it is missing.
    pub(crate) fn model(file: &str) -> PathBuf {
        let path = models_dir().join(file);
        assert!(
            path.is_file(),
            "model {} is missing: run scripts/fetch-models",
            path.display()
        );
        path
    }

    /// `$ORT_DYLIB_PATH`, else `<models>/lib/libonnxruntime.so`.
    pub(crate) fn library() -> PathBuf {
        let path = std::env::var_os(super::DYLIB_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| models_dir().join("lib/libonnxruntime.so"));
        assert!(
            path.is_file(),
            "ONNX Runtime library {} is missing: set {} or run scripts/fetch-models",
            path.display(),
            super::DYLIB_ENV
        );
        path
    }

    /// Loads the runtime for a test; panics with the reason when it cannot.
    pub(crate) fn init_runtime() {
        let lib = library();
        if let Err(e) = super::init(Some(&lib)) {
            panic!("cannot load ONNX Runtime from {}: {e}", lib.display());
        }
    }

    pub(crate) fn params() -> OnnxParams {
        OnnxParams::default()
    }

    pub(crate) use crate::testdata::rgb as test_photo;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_library_is_model_unavailable_naming_it() {
        let path = Path::new("/nonexistent/dir/libonnxruntime.so");
        let err = init(Some(path)).unwrap_err();
        assert!(
            matches!(err, EngineError::ModelUnavailable { .. }),
            "{err:?}"
        );
        assert_eq!(err.code(), "model_unavailable");
        assert!(
            err.to_string()
                .contains("/nonexistent/dir/libonnxruntime.so"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_no_library_is_an_error_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("facecraft-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("libonnxruntime-fake.so");
        std::fs::write(&fake, b"this is not an ELF file").unwrap();
        // Whether or not another test loaded the real runtime first, this must be refused
        // with an error naming the file.
        let err = init(Some(&fake)).unwrap_err();
        assert!(
            matches!(err, EngineError::ModelUnavailable { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("libonnxruntime-fake.so"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn init_is_idempotent() {
        test_support::init_runtime();
        test_support::init_runtime();
        init(None).unwrap();
        assert!(loaded_library().is_some());
    }

    #[test]
    fn missing_model_file_is_model_unavailable_naming_it() {
        let path = Path::new("/nonexistent/models/u2netp.onnx");
        let err = OnnxSession::load(path, &OnnxParams::default()).unwrap_err();
        assert!(
            matches!(err, EngineError::ModelUnavailable { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("/nonexistent/models/u2netp.onnx"),
            "{err}"
        );
    }

    #[test]
    fn garbage_model_file_is_model_unavailable_naming_it() {
        test_support::init_runtime();
        let dir = std::env::temp_dir().join(format!("facecraft-onnx-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("garbage.onnx");
        std::fs::write(&path, b"\x08\x07not a protobuf at all \xff\xfe").unwrap();
        let err = OnnxSession::load(&path, &OnnxParams::default()).unwrap_err();
        assert!(
            matches!(err, EngineError::ModelUnavailable { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("garbage.onnx"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn session_reports_its_inputs_and_outputs() {
        test_support::init_runtime();
        let session =
            OnnxSession::load(&test_support::model("u2netp.onnx"), &test_support::params())
                .unwrap();
        assert_eq!(session.input_names().len(), 1);
        assert_eq!(session.output_names().len(), 7);
        assert_eq!(session.input_shape(0), Some(&[1, 3, 320, 320][..]));
        assert_eq!(session.output_shape(0), Some(&[1, 1, 320, 320][..]));
    }
}
