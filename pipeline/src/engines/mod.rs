//! Inference engines behind the traits of [`crate::face`], one module per engine and
//! one Cargo feature per runtime (`dlib`, `onnx`). Models load once, at worker start, from
//! `FACECRAFT_MODELS_DIR`; a missing file is a start-up error that names it. A job asking for an
//! engine this worker did not load fails with `model_unavailable`.

#[cfg(feature = "dlib")]
pub mod dlib;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "onnx")]
pub mod retinaface;
#[cfg(feature = "torch")]
pub mod torch;
#[cfg(feature = "onnx")]
pub mod u2net;

use std::path::PathBuf;

use clap::Args;
use facecraft_contract::job::{Detector, SegmentationModel};
use image::RgbImage;

use crate::confirm::{plausible, ConfirmParams};
use crate::face::{EngineError, FaceDetector, FaceLandmarks, Landmarker, Restorer, Segmenter};

/// Which models to load, and from where.
#[derive(Debug, Clone, Args)]
pub struct EngineSettings {
    /// Folder holding the model files (see models/README.md).
    #[arg(long, env = "FACECRAFT_MODELS_DIR", default_value = "models/files")]
    pub models_dir: PathBuf,
    /// ONNX Runtime shared library; default `<models dir>/lib/libonnxruntime.so` when present.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib: Option<PathBuf>,
    /// Face detectors to load, comma-separated: hog, cnn, retinaface.
    #[arg(
        long,
        env = "FACECRAFT_DETECTORS",
        value_delimiter = ',',
        default_value = "hog,cnn,retinaface"
    )]
    pub detectors: Vec<String>,
    /// Background-removal models to load, comma-separated: u2netp, u2net, u2net_human_seg.
    #[arg(
        long,
        env = "FACECRAFT_SEGMENTATION_MODELS",
        value_delimiter = ',',
        default_value = "u2netp"
    )]
    pub segmentation_models: Vec<String>,
    /// dlib landmark model: 5 (default; all alignment needs) or 68 (non-commercial licence).
    #[arg(long, env = "FACECRAFT_LANDMARKS", default_value_t = 5)]
    pub landmarks: u8,
    /// Threads one ONNX inference may use: `auto` (the CPUs this process may use, divided
    /// by the jobs it runs at once), a number, or 0 to let ONNX Runtime decide.
    #[arg(long, env = "FACECRAFT_ONNX_THREADS", default_value = "auto")]
    pub onnx_threads: OnnxThreads,
    /// Where the ONNX models run: `cpu`; `cuda` (start fails unless ONNX Runtime's CUDA
    /// provider registers); `auto` (CUDA where this build and the machine allow it, else the
    /// CPU, logged per model).
    #[arg(long, env = "FACECRAFT_DEVICE", value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Face-restoration network to load: `none`, or `gfpgan` (GFPGAN v1.4 as TorchScript,
    /// `gfpgan-v1.4-b1.pt`; needs a build with the `torch` feature, as the worker-gpu image).
    /// A worker that loads one serves the GPU lane (`restore=true` jobs).
    #[arg(long, env = "FACECRAFT_RESTORER", value_enum, default_value_t = RestorerKind::None)]
    pub restorer: RestorerKind,
    /// Cross-job batching: most images one inference of U²-Net, RetinaFace or the restoration
    /// network runs at once, gathered from concurrent jobs by one inference thread per model
    /// (1-64; 1 = none). Pays on a GPU; on a CPU a batch takes as long as its images one by one.
    /// Needs the batch-axis model files (`*.batch.onnx` from scripts/patch-onnx-batch, and
    /// `gfpgan-v1.4-b<N>.pt` from `scripts/export-gfpgan --batch 1,<N>`).
    #[arg(long, env = "FACECRAFT_BATCH_MAX", default_value_t = 1)]
    pub batch_max: usize,
    /// How long the first image of a batch waits for others to join it, in ms.
    #[arg(long, env = "FACECRAFT_BATCH_WAIT_MS", default_value_t = 5)]
    pub batch_wait_ms: u64,
    /// ONNX Runtime's CPU memory arena: `true` keeps each model's largest working buffers
    /// between inferences (fastest); `false` frees them after each: with glibc's mmap
    /// threshold fixed (GLIBC_TUNABLES, as the images set it) about a fifth less peak memory
    /// with U²-Net, at 1.25-1.4× the segmentation time.
    #[arg(
        long,
        env = "FACECRAFT_ONNX_ARENA",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub onnx_arena: bool,
    /// Jobs the caller runs at once (the worker's concurrency; 1 for `process`), for
    /// `onnx_threads = auto`. Set by the binary, not a flag.
    #[arg(skip = 1usize)]
    pub jobs_at_once: usize,
}

/// Where ONNX models run (`FACECRAFT_DEVICE`). dlib's engines always run on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    Cpu,
    Cuda,
    Auto,
}

/// Which face-restoration network a worker loads (`FACECRAFT_RESTORER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestorerKind {
    None,
    Gfpgan,
}

/// The GFPGAN file the torch engine loads: one trace per batch size (a trace fixes it), made
/// by `scripts/export-gfpgan`.
pub const GFPGAN_FILE: &str = "gfpgan-v1.4-b1.pt";

/// ONNX Runtime's intra-op threads per inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnnxThreads {
    /// The CPUs this process may use (`available_parallelism`: CPU affinity and cgroup quota
    /// included) divided by the jobs run at once, at least 1: one job on an idle worker uses
    /// every core, N jobs share them without oversubscribing.
    Auto,
    /// This many; 0 lets ONNX Runtime decide (one per physical core, whatever else runs).
    Fixed(usize),
}

impl OnnxThreads {
    /// The thread count for `jobs_at_once` concurrent jobs.
    pub fn resolve(self, jobs_at_once: usize) -> usize {
        match self {
            Self::Auto => (usable_cpus() / jobs_at_once.max(1)).max(1),
            Self::Fixed(n) => n,
        }
    }
}

impl std::str::FromStr for OnnxThreads {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            n => n
                .parse()
                .map(Self::Fixed)
                .map_err(|_| format!("`{s}` is not `auto` or a number of threads")),
        }
    }
}

/// CPUs this process may use: affinity and cgroup CPU quota included (a container limited to
/// 2 CPUs on a 64-core node gets 2).
pub fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl EngineSettings {
    /// Defaults with the models folder from `FACECRAFT_MODELS_DIR`, else the repository's
    /// `models/files` (tests and benches).
    pub fn from_env_for_tests() -> Self {
        let models_dir = std::env::var_os("FACECRAFT_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/files"));
        Self {
            models_dir,
            ort_dylib: std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from),
            detectors: vec!["hog".into(), "cnn".into(), "retinaface".into()],
            segmentation_models: vec!["u2netp".into()],
            landmarks: 5,
            onnx_threads: OnnxThreads::Fixed(1),
            device: Device::Cpu,
            restorer: RestorerKind::None,
            batch_max: 1,
            batch_wait_ms: 5,
            onnx_arena: true,
            jobs_at_once: 1,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for d in &self.detectors {
            parse_name::<Detector>(d).map_err(|e| format!("FACECRAFT_DETECTORS: {e}"))?;
        }
        for m in &self.segmentation_models {
            parse_name::<SegmentationModel>(m)
                .map_err(|e| format!("FACECRAFT_SEGMENTATION_MODELS: {e}"))?;
        }
        if !matches!(self.landmarks, 5 | 68) {
            return Err("FACECRAFT_LANDMARKS must be 5 or 68".into());
        }
        if self.device == Device::Cuda && !cfg!(feature = "cuda") {
            return Err(
                "FACECRAFT_DEVICE=cuda, but this build has no CUDA support (the worker-gpu image \
                 has; cargo feature `cuda`)"
                    .into(),
            );
        }
        if !(1..=64).contains(&self.batch_max) {
            return Err(format!(
                "FACECRAFT_BATCH_MAX must be 1-64, got {}",
                self.batch_max
            ));
        }
        if self.batch_wait_ms > 1_000 {
            return Err(format!(
                "FACECRAFT_BATCH_WAIT_MS must be at most 1000, got {}",
                self.batch_wait_ms
            ));
        }
        if self.restorer != RestorerKind::None && !cfg!(feature = "torch") {
            return Err(
                "FACECRAFT_RESTORER needs a build with libtorch (the worker-gpu image; cargo \
                 feature `torch`)"
                    .into(),
            );
        }
        Ok(())
    }
}

fn parse_name<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_owned()))
        .map_err(|_| format!("unknown name `{s}`"))
}

impl EngineSettings {
    /// Cross-job batching as configured.
    pub fn batch(&self) -> crate::batch::BatchSettings {
        crate::batch::BatchSettings {
            max: self.batch_max.max(1),
            wait: std::time::Duration::from_millis(self.batch_wait_ms),
        }
    }

    /// Jobs whose inferences run at once, for the thread rule: with batching, one inference
    /// thread per model runs every job's images, so each inference may use every CPU.
    fn inferences_at_once(&self) -> usize {
        if self.batch().batches() {
            1
        } else {
            self.jobs_at_once
        }
    }
}

/// The file of a segmentation model with a batch axis (`scripts/patch-onnx-batch`).
pub fn segmentation_batch_file(m: SegmentationModel) -> String {
    segmentation_file(m).replace(".onnx", ".batch.onnx")
}

/// File name of a segmentation model in the models folder.
pub fn segmentation_file(m: SegmentationModel) -> &'static str {
    match m {
        SegmentationModel::U2netp => "u2netp.onnx",
        SegmentationModel::U2net => "u2net.onnx",
        SegmentationModel::U2netHumanSeg => "u2net_human_seg.onnx",
    }
}

/// One engine, loaded.
enum Loaded {
    Detector(Detector, Box<dyn FaceDetector>),
    #[cfg_attr(not(feature = "dlib"), allow(dead_code))]
    Landmarker(Box<dyn Landmarker>),
    #[cfg_attr(not(feature = "onnx"), allow(dead_code))]
    Segmenter(SegmentationModel, Box<dyn Segmenter>),
    #[cfg_attr(not(feature = "torch"), allow(dead_code))]
    Restorer(Box<dyn Restorer>),
}

/// The loaded engines; shared by every job of a worker.
#[derive(Default)]
pub struct Engines {
    detectors: Vec<(Detector, Box<dyn FaceDetector>)>,
    landmarker: Option<Box<dyn Landmarker>>,
    segmenters: Vec<(SegmentationModel, Box<dyn Segmenter>)>,
    restorer: Option<Box<dyn Restorer>>,
}

impl std::fmt::Debug for Engines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engines")
            .field(
                "detectors",
                &self
                    .detectors
                    .iter()
                    .map(|(_, d)| d.name())
                    .collect::<Vec<_>>(),
            )
            .field("landmarker", &self.landmarker.as_ref().map(|l| l.name()))
            .field(
                "segmenters",
                &self
                    .segmenters
                    .iter()
                    .map(|(_, s)| s.name())
                    .collect::<Vec<_>>(),
            )
            .field("restorer", &self.restorer.as_ref().map(|r| r.name()))
            .finish()
    }
}

impl Engines {
    /// The models held, as `(engine name, role)`; the role is `detection`, `landmarks` or
    /// `segmentation` or `restoration`.
    pub fn models(&self) -> Vec<(&'static str, &'static str)> {
        let detectors = self.detectors.iter().map(|(_, d)| (d.name(), "detection"));
        let landmarks = self.landmarker.iter().map(|l| (l.name(), "landmarks"));
        let segmenters = self
            .segmenters
            .iter()
            .map(|(_, s)| (s.name(), "segmentation"));
        let restorer = self.restorer.iter().map(|r| (r.name(), "restoration"));
        detectors
            .chain(landmarks)
            .chain(segmenters)
            .chain(restorer)
            .collect()
    }

    /// Where each engine runs, as `(engine name, device)`; the device is `cpu` or `cuda`.
    pub fn devices(&self) -> Vec<(&'static str, &'static str)> {
        let detectors = self.detectors.iter().map(|(_, d)| (d.name(), d.device()));
        let landmarks = self.landmarker.iter().map(|l| (l.name(), l.device()));
        let segmenters = self.segmenters.iter().map(|(_, s)| (s.name(), s.device()));
        let restorer = self.restorer.iter().map(|r| (r.name(), r.device()));
        detectors
            .chain(landmarks)
            .chain(segmenters)
            .chain(restorer)
            .collect()
    }

    /// Loads every configured model; the first missing or broken file is the error.
    pub fn load(s: &EngineSettings) -> Result<Self, EngineError> {
        s.validate().map_err(EngineError::NotLoaded)?;
        let mut engines = Self::default();
        let file = |name: &str| s.models_dir.join(name);
        #[cfg(feature = "onnx")]
        let onnx_params = onnx::OnnxParams {
            intra_threads: s.onnx_threads.resolve(s.inferences_at_once()),
            device: s.device,
            batch: s.batch(),
            cpu_arena: s.onnx_arena,
        };
        #[cfg(feature = "onnx")]
        tracing::info!(
            onnx_threads = onnx_params.intra_threads,
            onnx_arena = onnx_params.cpu_arena,
            setting = ?s.onnx_threads,
            jobs_at_once = s.jobs_at_once,
            batch_max = s.batch_max,
            "ONNX Runtime threads per inference"
        );
        #[cfg(feature = "onnx")]
        let needs_onnx = !s.segmentation_models.is_empty()
            || s.detectors.iter().any(|d| d.trim() == "retinaface");
        #[cfg(feature = "onnx")]
        if needs_onnx {
            let default_lib = file("lib/libonnxruntime.so");
            let lib = s
                .ort_dylib
                .clone()
                .or_else(|| default_lib.exists().then_some(default_lib));
            onnx::init(lib.as_deref())?;
        }
        // Each model loads on its own thread (file reads, dlib deserialisation and ONNX
        // Runtime's graph optimisation are independent), so start-up takes as long as the
        // slowest model rather than their sum. Results keep the configured order; the first
        // error in that order is the one reported.
        let started = std::time::Instant::now();
        let mut tasks: Vec<Box<dyn FnOnce() -> Result<Loaded, EngineError> + Send + '_>> =
            Vec::new();
        for name in &s.detectors {
            let d: Detector = parse_name(name).map_err(EngineError::NotLoaded)?;
            #[cfg(feature = "onnx")]
            let onnx_params = &onnx_params;
            let file = &file;
            tasks.push(Box::new(move || {
                let engine: Box<dyn FaceDetector> = match d {
                    #[cfg(feature = "dlib")]
                    Detector::Hog => Box::new(dlib::HogDetector::new(dlib::HogParams::default())),
                    #[cfg(feature = "dlib")]
                    Detector::Cnn => Box::new(dlib::CnnDetector::load(&file(
                        "mmod_human_face_detector.dat",
                    ))?),
                    #[cfg(feature = "onnx")]
                    Detector::Retinaface => Box::new(retinaface::RetinaFace::load(
                        &file("retinaface_mnet025.onnx"),
                        onnx_params,
                        retinaface::RetinaFaceParams::default(),
                    )?),
                    #[allow(unreachable_patterns)]
                    other => {
                        return Err(EngineError::NotLoaded(format!(
                            "detector {other:?} (this build lacks its engine feature)"
                        )))
                    }
                };
                Ok(Loaded::Detector(d, engine))
            }));
        }
        #[cfg(feature = "dlib")]
        {
            let name = if s.landmarks == 68 {
                "shape_predictor_68_face_landmarks.dat"
            } else {
                "shape_predictor_5_face_landmarks.dat"
            };
            let file = &file;
            tasks.push(Box::new(move || {
                Ok(Loaded::Landmarker(Box::new(dlib::DlibLandmarker::load(
                    &file(name),
                )?)))
            }));
        }
        for name in &s.segmentation_models {
            let m: SegmentationModel = parse_name(name).map_err(EngineError::NotLoaded)?;
            #[cfg(feature = "onnx")]
            {
                let onnx_params = &onnx_params;
                let file = &file;
                let name = if onnx_params.batch.batches() {
                    segmentation_batch_file(m)
                } else {
                    segmentation_file(m).to_owned()
                };
                tasks.push(Box::new(move || {
                    Ok(Loaded::Segmenter(
                        m,
                        Box::new(u2net::U2Net::load(&file(&name), onnx_params)?),
                    ))
                }));
            }
            #[cfg(not(feature = "onnx"))]
            return Err(EngineError::NotLoaded(format!(
                "segmentation model {m:?} (this build lacks ONNX)"
            )));
        }
        #[cfg(feature = "torch")]
        if s.restorer == RestorerKind::Gfpgan {
            let file = &file;
            let params = torch::TorchParams {
                device: s.device,
                // libtorch's intra-op pool, sized by the same rule as ONNX Runtime's.
                threads: s.onnx_threads.resolve(s.inferences_at_once()),
                batch: s.batch(),
            };
            tasks.push(Box::new(move || {
                Ok(Loaded::Restorer(Box::new(torch::TorchRestorer::load(
                    &file(GFPGAN_FILE),
                    "gfpgan-v1.4",
                    &params,
                )?)))
            }));
        }
        let loaded: Vec<Result<Loaded, EngineError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = tasks.into_iter().map(|t| scope.spawn(t)).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(EngineError::NotLoaded("a model loader panicked".into()))
                    })
                })
                .collect()
        });
        for l in loaded {
            match l? {
                Loaded::Detector(d, e) => engines.detectors.push((d, e)),
                Loaded::Landmarker(e) => engines.landmarker = Some(e),
                Loaded::Segmenter(m, e) => engines.segmenters.push((m, e)),
                Loaded::Restorer(e) => engines.restorer = Some(e),
            }
        }
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            setting = ?s.device,
            devices = ?engines.devices(),
            "models loaded in parallel"
        );
        Ok(engines)
    }

    pub fn detector(&self, d: Detector) -> Result<&dyn FaceDetector, EngineError> {
        self.detectors
            .iter()
            .find(|(k, _)| *k == d)
            .map(|(_, e)| e.as_ref())
            .ok_or_else(|| EngineError::NotLoaded(format!("face detector `{}`", name_of(&d))))
    }

    /// Loaded detectors other than `d`, in load order: fallbacks when `d` finds nothing.
    pub fn other_detectors(
        &self,
        d: Detector,
    ) -> impl Iterator<Item = (Detector, &dyn FaceDetector)> {
        self.detectors
            .iter()
            .filter(move |(k, _)| *k != d)
            .map(|(k, e)| (*k, e.as_ref()))
    }

    /// The face-restoration engine; `NotLoaded` in a worker started without one (a CPU worker,
    /// which never takes the GPU lane's jobs).
    pub fn restorer(&self) -> Result<&dyn Restorer, EngineError> {
        self.restorer.as_deref().ok_or_else(|| {
            EngineError::NotLoaded("face restoration (FACECRAFT_RESTORER is `none`)".into())
        })
    }

    /// Whether a restoration engine is loaded: such a worker serves the GPU lane.
    pub fn restores(&self) -> bool {
        self.restorer.is_some()
    }

    pub fn landmarker(&self) -> Option<&dyn Landmarker> {
        self.landmarker.as_deref()
    }

    pub fn segmenter(&self, m: SegmentationModel) -> Result<&dyn Segmenter, EngineError> {
        self.segmenters
            .iter()
            .find(|(k, _)| *k == m)
            .map(|(_, e)| e.as_ref())
            .ok_or_else(|| {
                EngineError::NotLoaded(format!(
                    "segmentation model `{}` ({})",
                    name_of(&m),
                    segmentation_file(m)
                ))
            })
    }

    /// Landmarks of the most prominent plausible face, for checking outputs (tests, benches).
    pub fn measure_face(&self, img: &RgbImage) -> Result<Option<FaceLandmarks>, EngineError> {
        for (_, det) in &self.detectors {
            let mut faces = det.detect(img)?;
            faces.sort_by(|a, b| b.bbox.area().total_cmp(&a.bbox.area()));
            for f in faces {
                let lm = match (self.landmarker(), f.landmarks.clone()) {
                    (Some(l), _) => l.landmarks(img, &f.bbox)?,
                    (None, Some(lm)) => lm,
                    (None, None) => continue,
                };
                if plausible(&f.bbox, &lm, &ConfirmParams::default()).is_ok() {
                    return Ok(Some(lm));
                }
            }
        }
        Ok(None)
    }
}

fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_is_cpu_cuda_or_auto_and_cuda_needs_a_cuda_build() {
        use clap::ValueEnum;
        assert_eq!(Device::from_str("cuda", false), Ok(Device::Cuda));
        assert!(Device::from_str("gpu", false).is_err());
        let mut s = EngineSettings::from_env_for_tests();
        for d in [Device::Cpu, Device::Auto] {
            s.device = d;
            assert_eq!(s.validate(), Ok(()));
        }
        s.device = Device::Cuda;
        let checked = s.validate();
        if cfg!(feature = "cuda") {
            assert_eq!(checked, Ok(()));
        } else {
            let e = checked.unwrap_err();
            assert!(
                e.contains("FACECRAFT_DEVICE=cuda") && e.contains("no CUDA support"),
                "{e}"
            );
            let e = Engines::load(&s).unwrap_err();
            assert!(e.to_string().contains("no CUDA support"), "{e}");
        }
    }

    #[cfg(feature = "onnx")]
    #[test]
    fn on_a_cpu_build_auto_puts_every_engine_on_the_cpu() {
        let mut s = EngineSettings::from_env_for_tests();
        s.detectors = vec!["hog".into(), "retinaface".into()];
        s.device = Device::Auto;
        let engines = Engines::load(&s).unwrap();
        let devices = engines.devices();
        assert!(devices.iter().any(|(e, _)| *e == "u2netp"), "{devices:?}");
        let want = if cfg!(feature = "cuda") {
            None
        } else {
            Some("cpu")
        };
        if let Some(want) = want {
            assert!(devices.iter().all(|(_, d)| *d == want), "{devices:?}");
        }
    }

    #[test]
    fn onnx_threads_are_auto_or_a_number() {
        assert_eq!("auto".parse::<OnnxThreads>(), Ok(OnnxThreads::Auto));
        assert_eq!(" 4 ".parse::<OnnxThreads>(), Ok(OnnxThreads::Fixed(4)));
        assert_eq!("0".parse::<OnnxThreads>(), Ok(OnnxThreads::Fixed(0)));
        assert!("many"
            .parse::<OnnxThreads>()
            .unwrap_err()
            .contains("`many`"));
    }

    #[test]
    fn auto_shares_the_cpus_between_jobs_without_oversubscribing() {
        let cpus = usable_cpus();
        assert_eq!(
            OnnxThreads::Auto.resolve(1),
            cpus,
            "one job uses every core"
        );
        assert_eq!(OnnxThreads::Auto.resolve(cpus), 1);
        assert_eq!(OnnxThreads::Auto.resolve(cpus * 4), 1, "never below one");
        assert_eq!(OnnxThreads::Auto.resolve(0), cpus);
        assert!(OnnxThreads::Auto.resolve(2) * 2 <= cpus.max(2));
        assert_eq!(OnnxThreads::Fixed(3).resolve(8), 3);
    }

    #[test]
    fn the_onnx_arena_is_on_unless_set_to_false() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            engines: EngineSettings,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
                .map(|c| c.engines.onnx_arena)
        };
        assert!(parse(&[]).unwrap());
        assert!(!parse(&["--onnx-arena", "false"]).unwrap());
        assert!(parse(&["--onnx-arena=true"]).unwrap());
        assert!(parse(&["--onnx-arena", "sometimes"]).is_err());
    }
}
