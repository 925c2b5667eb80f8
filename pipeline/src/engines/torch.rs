//! The face-restoration engine on libtorch (`tch`): a TorchScript module (GFPGAN v1.4, made by
//! `scripts/export-gfpgan`) taking `N × 3 × 512 × 512` RGB in [−1, 1] and giving the same.
//! libtorch is linked (feature `torch`), so only the worker-gpu image carries it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use image::RgbImage;
use tch::{CModule, Kind, Tensor};

use super::Device;
use crate::batch::{BatchSettings, Batcher};
use crate::face::{EngineError, Restorer};

/// How the engine runs.
#[derive(Debug, Clone, Copy)]
pub struct TorchParams {
    /// `cpu`, `cuda` (start fails unless libtorch sees a CUDA device) or `auto`.
    pub device: Device,
    /// libtorch's intra-op threads; 0 leaves its default (one per core).
    pub threads: usize,
    /// Cross-job batching: with `max` > 1 a second trace, `<name>-b<max>.pt`, runs the batches
    /// (a trace fixes its batch size; smaller batches are padded).
    pub batch: BatchSettings,
}

/// A TorchScript face-restoration network.
pub struct TorchRestorer {
    name: &'static str,
    net: Arc<Net>,
    batcher: Option<Batcher<RgbImage, RgbImage>>,
}

/// The loaded traces.
struct Net {
    name: &'static str,
    device: tch::Device,
    size: u32,
    // libtorch's modules are thread-safe for inference, but one forward pass already uses
    // every intra-op thread: running two at once would only make both slower.
    single: Mutex<CModule>,
    /// The trace for full batches and its batch size.
    batched: Option<(usize, Mutex<CModule>)>,
}

impl TorchRestorer {
    /// Loads `path` (the batch-1 trace, `…-b1.pt`) onto the device `params` asks for, and with
    /// batching the batch trace beside it. A missing or unreadable file names the file;
    /// `Device::Cuda` without a CUDA device libtorch can use is `DeviceUnavailable`.
    pub fn load(
        path: &Path,
        name: &'static str,
        params: &TorchParams,
    ) -> Result<Self, EngineError> {
        let cuda = tch::Cuda::is_available();
        let device = match params.device {
            Device::Cpu => tch::Device::Cpu,
            Device::Cuda if cuda => tch::Device::Cuda(0),
            Device::Cuda => {
                return Err(EngineError::DeviceUnavailable(format!(
                    "libtorch sees no CUDA device for {name} (CUDA devices: {}, libtorch built \
                     with CUDA: {})",
                    tch::Cuda::device_count(),
                    tch::utils::has_cuda()
                )))
            }
            Device::Auto if cuda => tch::Device::Cuda(0),
            Device::Auto => tch::Device::Cpu,
        };
        if params.threads > 0 && device == tch::Device::Cpu {
            // Process-wide in libtorch; this is its only user.
            tch::set_num_threads(i32::try_from(params.threads).unwrap_or(i32::MAX));
        }
        let single = load_module(path, device)?;
        let batched = if params.batch.batches() {
            let max = params.batch.max;
            let file = batch_file(path, max);
            Some((max, load_module(&file, device)?))
        } else {
            None
        };
        let net = Arc::new(Net {
            name,
            device,
            size: 512,
            single,
            batched,
        });
        // One pass on a grey face through each trace: a file that loads but is not a 512²
        // restoration network (or not of its batch size) fails here, at start, not on a job.
        let probe = RgbImage::from_pixel(net.size, net.size, image::Rgb([128, 128, 128]));
        net.run(std::slice::from_ref(&probe))
            .map_err(|e| EngineError::ModelUnavailable {
                path: path.display().to_string(),
                reason: format!("it does not restore a {0}x{0} face: {e}", net.size),
            })?;
        if let Some((max, _)) = &net.batched {
            net.run(&vec![probe; *max])
                .map_err(|e| EngineError::ModelUnavailable {
                    path: batch_file(path, *max).display().to_string(),
                    reason: format!("it does not restore a batch of {max} faces: {e}"),
                })?;
        }
        let batcher = if params.batch.batches() {
            let net = net.clone();
            Some(Batcher::spawn(
                name,
                params.batch,
                Box::new(move |faces: &[RgbImage]| net.run(faces)),
            )?)
        } else {
            None
        };
        tracing::info!(engine = name, device = ?device, batch_max = params.batch.max, "face restoration loaded");
        if random_weights(path) {
            tracing::warn!(
                engine = name,
                file = %path.display(),
                "this restoration network has seeded random weights (scripts/export-gfpgan \
                 without --weights): it paints noise over faces. Fine for tests and benchmarks, \
                 never for users: export it with the upstream weights"
            );
        }
        Ok(Self { name, net, batcher })
    }
}

/// `gfpgan-v1.4-b1.pt` → `gfpgan-v1.4-b<max>.pt`.
fn batch_file(single: &Path, max: usize) -> PathBuf {
    let name = single
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .replace("-b1.pt", &format!("-b{max}.pt"));
    single.with_file_name(name)
}

fn load_module(path: &Path, device: tch::Device) -> Result<Mutex<CModule>, EngineError> {
    let unavailable = |reason: String| EngineError::ModelUnavailable {
        path: path.display().to_string(),
        reason,
    };
    if !path.is_file() {
        return Err(unavailable(
            "not found (make it with scripts/export-gfpgan; see docs/gpu.md)".into(),
        ));
    }
    let mut module = CModule::load_on_device(path, device)
        .map_err(|e| unavailable(format!("libtorch cannot load it: {}", cause(&e))))?;
    module.set_eval();
    Ok(Mutex::new(module))
}

impl Net {
    /// Restores `faces` (each `size`²): through the batch trace when there are several
    /// (padded with copies of the last face up to its batch size), else the single one.
    fn run(&self, faces: &[RgbImage]) -> Result<Vec<RgbImage>, EngineError> {
        let n = faces.len();
        let (module, traced) = match &self.batched {
            Some((max, m)) if n > 1 && n <= *max => (m, *max),
            _ if n == 1 => (&self.single, 1),
            _ => {
                return Err(EngineError::Inference(format!(
                    "{}: no trace for a batch of {n}",
                    self.name
                )))
            }
        };
        let side = i64::from(self.size);
        let failed =
            |e: tch::TchError| EngineError::Inference(format!("{}: {}", self.name, cause(&e)));
        let mut pixels = Vec::with_capacity(traced * faces[0].as_raw().len());
        for i in 0..traced {
            pixels.extend_from_slice(faces[i.min(n - 1)].as_raw());
        }
        let b = i64::try_from(traced).unwrap_or(i64::MAX);
        let out = tch::no_grad(|| -> Result<Tensor, tch::TchError> {
            let input = Tensor::f_from_slice(&pixels)?
                .f_view([b, side, side, 3])?
                .f_permute([0, 3, 1, 2])?
                .f_to_kind(Kind::Float)?
                // The permute leaves a channels-last layout, and the traced graph `view`s its
                // features, which needs the default one.
                .f_contiguous()?
                .f_to_device(self.device)?;
            let input = input.f_div_scalar(127.5)?.f_sub_scalar(1.0)?;
            let module = module
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let out = module.forward_ts(&[input])?;
            drop(module);
            // [−1, 1] → 0..255, rounded; the network's output is not clamped by itself.
            out.f_clamp(-1.0, 1.0)?
                .f_add_scalar(1.0)?
                .f_mul_scalar(127.5)?
                .f_round()?
                .f_to_kind(Kind::Uint8)?
                .f_permute([0, 2, 3, 1])?
                .f_contiguous()?
                .f_to_device(tch::Device::Cpu)
        })
        .map_err(failed)?;
        if out.size() != [b, side, side, 3] {
            return Err(EngineError::Inference(format!(
                "{} answered a tensor of shape {:?}, not {b}x3x{side}x{side}",
                self.name,
                out.size()
            )));
        }
        let pixels = Vec::<u8>::try_from(out.flatten(0, -1)).map_err(failed)?;
        let per = pixels.len() / traced;
        pixels
            .chunks_exact(per)
            .take(n)
            .map(|p| {
                RgbImage::from_raw(self.size, self.size, p.to_vec())
                    .ok_or_else(|| EngineError::Inference(format!("{}: short output", self.name)))
            })
            .collect()
    }
}

impl Restorer for TorchRestorer {
    fn name(&self) -> &'static str {
        self.name
    }

    fn device(&self) -> &'static str {
        if self.net.device.is_cuda() {
            "cuda"
        } else {
            "cpu"
        }
    }

    fn size(&self) -> u32 {
        self.net.size
    }

    fn restore(&self, face: &RgbImage) -> Result<RgbImage, EngineError> {
        let n = self.net.size;
        if face.dimensions() != (n, n) {
            return Err(EngineError::Inference(format!(
                "{} takes {n}x{n} faces, got {}x{}",
                self.name,
                face.width(),
                face.height()
            )));
        }
        match &self.batcher {
            Some(b) => b.run(face.clone()),
            None => self
                .net
                .run(std::slice::from_ref(face))?
                .pop()
                .ok_or_else(|| EngineError::Inference(format!("{}: no output", self.name))),
        }
    }
}

/// Whether `scripts/export-gfpgan`'s sidecar (`<file>.json`) says the file has seeded random
/// weights. No sidecar (a file made elsewhere) says nothing.
fn random_weights(path: &Path) -> bool {
    let mut sidecar = path.as_os_str().to_owned();
    sidecar.push(".json");
    std::fs::read(sidecar)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| !v["provenance"]["weights"]["random"].is_null())
}

/// libtorch's errors carry a TorchScript call stack and a C++ backtrace around the message:
/// the line naming the exception is the one worth a log line.
fn cause(e: &tch::TchError) -> String {
    let text = e.to_string();
    let cause = text
        .lines()
        .find(|l| l.contains("Error: ") && !l.starts_with(' '))
        .or_else(|| text.lines().next());
    cause.unwrap_or_default().trim().to_owned()
}
