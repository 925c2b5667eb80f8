//! Cross-job batching benchmark (issue 10): images per second of U²-Net (u2netp), RetinaFace
//! and, in a build with feature `torch` that has the traces, the restoration network (GFPGAN
//! v1.4), at `FACECRAFT_BATCH_MAX` 1, 2, 4 and 8. At batch size `b`, `b` threads (jobs) send
//! their images at once to engines loaded with `batch_max = b`, so each inference is one batch
//! of `b`; every figure comes from the same run and is shown as a ratio of batch 1. On a CPU a
//! batch costs about what its images cost one by one; on a GPU batching is the point
//! (`scripts/gpu-check`). Prints figures; asserts nothing.
//!
//!     scripts/patch-onnx-batch u2netp                  # u2netp.batch.onnx
//!     cargo bench -p facecraft-pipeline --bench batch [-- ROUNDS]
//!     # restoration too: scripts/export-gfpgan --batch 1,2,4,8, LIBTORCH as in docs/gpu.md, then
//!     cargo bench -p facecraft-pipeline --features torch --bench batch

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use facecraft_contract::job::{Detector, SegmentationModel};
use facecraft_pipeline::engines::{EngineSettings, Engines, OnnxThreads, RestorerKind};
use image::{imageops, RgbImage};

const BATCHES: [usize; 4] = [1, 2, 4, 8];

/// A batched model.
#[derive(Clone, Copy)]
enum Model {
    U2netp,
    Retinaface,
    Gfpgan,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Self::U2netp => "u2netp (segmentation)",
            Self::Retinaface => "retinaface (detection)",
            Self::Gfpgan => "gfpgan-v1.4 (restoration)",
        }
    }

    /// Engine settings loading only this model, batched by `b`; the reason when a file it
    /// needs is missing.
    fn settings(self, b: usize, models: &Path) -> Result<EngineSettings, String> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let base = EngineSettings {
            detectors: Vec::new(),
            segmentation_models: Vec::new(),
            batch_max: b,
            // Long enough that `b` threads released together always meet in one batch.
            batch_wait_ms: 200,
            // Every batch size with the same threads: one inference at a time on all CPUs.
            onnx_threads: OnnxThreads::Fixed(cpus),
            ..EngineSettings::from_env_for_tests()
        };
        let need = |file: String, how: &str| {
            if models.join(&file).is_file() {
                Ok(())
            } else {
                Err(format!("{file} not in {} ({how})", models.display()))
            }
        };
        match self {
            Self::U2netp => {
                if b > 1 {
                    need(
                        "u2netp.batch.onnx".into(),
                        "scripts/patch-onnx-batch u2netp",
                    )?;
                }
                Ok(EngineSettings {
                    segmentation_models: vec!["u2netp".into()],
                    ..base
                })
            }
            Self::Retinaface => Ok(EngineSettings {
                detectors: vec!["retinaface".into()],
                ..base
            }),
            Self::Gfpgan => {
                if !cfg!(feature = "torch") {
                    return Err("built without feature torch".into());
                }
                need(
                    "gfpgan-v1.4-b1.pt".into(),
                    "scripts/export-gfpgan --batch 1,2,4,8",
                )?;
                need(
                    format!("gfpgan-v1.4-b{b}.pt"),
                    "scripts/export-gfpgan --batch 1,2,4,8",
                )?;
                Ok(EngineSettings {
                    restorer: RestorerKind::Gfpgan,
                    ..base
                })
            }
        }
    }

    fn run(self, engines: &Engines, photo: &RgbImage) {
        let done = match self {
            Self::U2netp => engines
                .segmenter(SegmentationModel::U2netp)
                .and_then(|s| s.matte(photo))
                .map(drop),
            Self::Retinaface => engines
                .detector(Detector::Retinaface)
                .and_then(|d| d.detect(photo))
                .map(drop),
            Self::Gfpgan => engines.restorer().and_then(|r| r.restore(photo)).map(drop),
        };
        done.unwrap_or_else(|e| panic!("{}: {e}", self.name()));
    }
}

/// Images per second with `b` jobs at once, each running `rounds` images after one warm-up.
fn images_per_sec(
    model: Model,
    engines: &Arc<Engines>,
    photo: &RgbImage,
    b: usize,
    rounds: usize,
) -> f64 {
    let barrier = Arc::new(Barrier::new(b + 1));
    let handles: Vec<_> = (0..b)
        .map(|_| {
            let (engines, barrier, photo) = (engines.clone(), barrier.clone(), photo.clone());
            std::thread::spawn(move || {
                model.run(&engines, &photo);
                barrier.wait();
                for _ in 0..rounds {
                    model.run(&engines, &photo);
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for h in handles {
        h.join().expect("a bench thread panicked");
    }
    (b * rounds) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(4)
        .max(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let astronaut = image::open(root.join("testdata/astronaut.png"))
        .expect("testdata/astronaut.png")
        .to_rgb8();
    let models = EngineSettings::from_env_for_tests().models_dir;
    println!(
        "astronaut.png; at batch b, b jobs at once, {rounds} images each after one warm-up; \
         {} CPUs",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for model in [Model::U2netp, Model::Retinaface, Model::Gfpgan] {
        // The restoration network takes the 512² face square; the others the photo.
        let photo = match model {
            Model::Gfpgan => imageops::resize(&astronaut, 512, 512, imageops::FilterType::Triangle),
            _ => astronaut.clone(),
        };
        // Restoration costs seconds per face on a CPU: fewer rounds.
        let rounds = match model {
            Model::Gfpgan => rounds.div_ceil(4),
            _ => rounds,
        };
        println!("\n{}", model.name());
        let mut base = None;
        for b in BATCHES {
            let settings = match model.settings(b, &models) {
                Ok(s) => s,
                Err(why) => {
                    println!("  batch {b}: skipped: {why}");
                    continue;
                }
            };
            let load = Instant::now();
            let engines = match Engines::load(&settings) {
                Ok(e) => Arc::new(e),
                Err(e) => {
                    println!("  batch {b}: skipped: {e}");
                    continue;
                }
            };
            let load = load.elapsed();
            let rate = images_per_sec(model, &engines, &photo, b, rounds);
            let ratio = match base {
                None => {
                    base = Some(rate);
                    String::from("1.00")
                }
                Some(one) => format!("{:.2}", rate / one),
            };
            println!(
                "  batch {b}: {rate:7.2} images/s  ({ratio} of batch 1; loaded in {:.1} s)",
                load.as_secs_f64()
            );
        }
    }
}
