//! The face-restoration engine on libtorch (`tch`): a TorchScript module (GFPGAN v1.4, made by
//! `scripts/export-gfpgan`) taking `N × 3 × 512 × 512` RGB in [−1, 1] and giving the same.
//! libtorch is linked (feature `torch`), so only the worker-gpu image carries it.

use std::path::Path;
use std::sync::Mutex;

use image::RgbImage;
use tch::{CModule, Kind, Tensor};

use super::Device;
use crate::face::{EngineError, Restorer};

/// How the engine runs.
#[derive(Debug, Clone, Copy)]
pub struct TorchParams {
    /// `cpu`, `cuda` (start fails unless libtorch sees a CUDA device) or `auto`.
    pub device: Device,
    /// libtorch's intra-op threads; 0 leaves its default (one per core).
    pub threads: usize,
}

/// A TorchScript face-restoration network.
pub struct TorchRestorer {
    name: &'static str,
    device: tch::Device,
    // libtorch's modules are thread-safe for inference, but one forward pass already uses
    // every intra-op thread: running two at once would only make both slower.
    module: Mutex<CModule>,
    size: u32,
}

impl TorchRestorer {
    /// Loads `path` onto the device `params` asks for. A missing or unreadable file names the
    /// file; `Device::Cuda` without a CUDA device libtorch can use is `DeviceUnavailable`.
    pub fn load(
        path: &Path,
        name: &'static str,
        params: &TorchParams,
    ) -> Result<Self, EngineError> {
        let unavailable = |reason: String| EngineError::ModelUnavailable {
            path: path.display().to_string(),
            reason,
        };
        if !path.is_file() {
            return Err(unavailable(
                "not found (make it with scripts/export-gfpgan; see models/README.md)".into(),
            ));
        }
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
        let mut module = CModule::load_on_device(path, device)
            .map_err(|e| unavailable(format!("libtorch cannot load it: {}", cause(&e))))?;
        module.set_eval();
        let engine = Self {
            name,
            device,
            module: Mutex::new(module),
            size: 512,
        };
        // One pass on a grey face: a file that loads but is not a 512² restoration network
        // fails here, at start, rather than on the first job.
        let probe = RgbImage::from_pixel(engine.size, engine.size, image::Rgb([128, 128, 128]));
        engine.restore(&probe).map_err(|e| {
            unavailable(format!(
                "it does not restore a {0}x{0} face: {e}",
                engine.size
            ))
        })?;
        tracing::info!(engine = name, device = ?device, "face restoration loaded");
        if random_weights(path) {
            tracing::warn!(
                engine = name,
                file = %path.display(),
                "this restoration network has seeded random weights (scripts/export-gfpgan \
                 without --weights): it paints noise over faces. Fine for tests and benchmarks, \
                 never for users: export it with the upstream weights"
            );
        }
        Ok(engine)
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

impl Restorer for TorchRestorer {
    fn name(&self) -> &'static str {
        self.name
    }

    fn device(&self) -> &'static str {
        if self.device.is_cuda() {
            "cuda"
        } else {
            "cpu"
        }
    }

    fn size(&self) -> u32 {
        self.size
    }

    fn restore(&self, face: &RgbImage) -> Result<RgbImage, EngineError> {
        let n = i64::from(self.size);
        if face.dimensions() != (self.size, self.size) {
            return Err(EngineError::Inference(format!(
                "{} takes {n}x{n} faces, got {}x{}",
                self.name,
                face.width(),
                face.height()
            )));
        }
        let failed =
            |e: tch::TchError| EngineError::Inference(format!("{}: {}", self.name, cause(&e)));
        let out = tch::no_grad(|| -> Result<Tensor, tch::TchError> {
            let input = Tensor::f_from_slice(face.as_raw())?
                .f_view([1, n, n, 3])?
                .f_permute([0, 3, 1, 2])?
                .f_to_kind(Kind::Float)?
                // The permute leaves a channels-last layout, and the traced graph `view`s its
                // features, which needs the default one.
                .f_contiguous()?
                .f_to_device(self.device)?;
            let input = input.f_div_scalar(127.5)?.f_sub_scalar(1.0)?;
            let module = self
                .module
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
        if out.size() != [1, n, n, 3] {
            return Err(EngineError::Inference(format!(
                "{} answered a tensor of shape {:?}, not 1x3x{n}x{n}",
                self.name,
                out.size()
            )));
        }
        let pixels = Vec::<u8>::try_from(out.flatten(0, -1)).map_err(failed)?;
        RgbImage::from_raw(self.size, self.size, pixels)
            .ok_or_else(|| EngineError::Inference(format!("{}: short output", self.name)))
    }
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
