//! Face restoration (DESIGN §6 step 9). Without the `torch` feature: a job asking for it
//! fails clearly. With it: the real GFPGAN v1.4 architecture as TorchScript on libtorch
//! (`scripts/export-gfpgan`; seeded random weights in CI, so the output is not a nicer face,
//! but shapes, cost and every step around the network are the real ones) on a real photo.
#![allow(clippy::unwrap_used)]

mod support;

use facecraft_contract::job::JobParams;
use support::{engines, quick, testdata};

fn astronaut_png() -> Vec<u8> {
    std::fs::read(testdata("astronaut.png")).unwrap()
}

#[test]
fn a_worker_without_the_engine_refuses_a_restore_job_at_once() {
    let params = JobParams {
        restore: true,
        ..quick()
    };
    let mut stages = Vec::new();
    let e = facecraft_pipeline::portrait::render(
        &astronaut_png(),
        &params,
        &Default::default(),
        engines(),
        &mut |s| {
            stages.push(s);
            true
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), "model_unavailable");
    assert!(e.to_string().contains("FACECRAFT_RESTORER"), "{e}");
    assert!(stages.is_empty(), "no work before the refusal: {stages:?}");
}

#[cfg(feature = "torch")]
mod torch {
    use std::sync::OnceLock;

    use super::*;
    use facecraft_contract::job::Format;
    use facecraft_pipeline::align::Affine;
    use facecraft_pipeline::engines::{
        Device, EngineSettings, Engines, OnnxThreads, RestorerKind, GFPGAN_FILE,
    };
    use facecraft_pipeline::face::Restorer;
    use facecraft_pipeline::restore::{self, face_mask, face_transform, RestoreParams};
    use image::{DynamicImage, RgbaImage};
    use support::astronaut;

    fn settings() -> EngineSettings {
        EngineSettings {
            restorer: RestorerKind::Gfpgan,
            onnx_threads: OnnxThreads::Auto,
            device: Device::Auto,
            ..EngineSettings::from_env_for_tests()
        }
    }

    /// Every engine of a GPU worker, the restoration network included (on the CPU here).
    fn gpu_engines() -> &'static Engines {
        static E: OnceLock<Engines> = OnceLock::new();
        E.get_or_init(|| {
            Engines::load(&settings()).unwrap_or_else(|e| {
                panic!("loading models (run scripts/fetch-models and scripts/export-gfpgan): {e}")
            })
        })
    }

    fn restorer() -> &'static dyn Restorer {
        gpu_engines().restorer().unwrap()
    }

    /// Whether image pixel `(x, y)` lies where the face mask is above 0.
    fn under_mask(to_face: &Affine, mask: &image::GrayImage, x: u32, y: u32) -> bool {
        let [fx, fy] = to_face.apply_f64([f64::from(x) + 0.5, f64::from(y) + 0.5]);
        let n = f64::from(mask.width());
        // The bilinear sample reaches one pixel around each mask pixel above 0.
        let (ix, iy) = ((fx - 0.5).floor(), (fy - 0.5).floor());
        (0..=1).any(|dy| {
            (0..=1).any(|dx| {
                let (mx, my) = (ix + f64::from(dx), iy + f64::from(dy));
                mx >= 0.0
                    && my >= 0.0
                    && mx < n
                    && my < n
                    && mask.get_pixel(mx as u32, my as u32).0[0] > 0
            })
        })
    }

    #[test]
    fn the_engine_reports_its_model_and_device() {
        let r = restorer();
        assert_eq!(r.size(), 512);
        let e = gpu_engines();
        assert!(e.models().contains(&("gfpgan-v1.4", "restoration")));
        // `auto`: CUDA where libtorch sees a device, else the CPU; reported either way.
        assert!(e.devices().contains(&("gfpgan-v1.4", r.device())));
        assert!(["cpu", "cuda"].contains(&r.device()));
    }

    /// The test photo and its landmarks, found by the CPU engines.
    fn astronaut_and_face() -> (RgbaImage, facecraft_pipeline::face::FaceLandmarks) {
        let photo = astronaut().clone();
        let rgb = DynamicImage::ImageRgba8(photo.clone()).to_rgb8();
        let lm = engines().measure_face(&rgb).unwrap().unwrap();
        (photo, lm)
    }

    /// `photo` with the face at `lm` restored at `fidelity`.
    fn restored(
        photo: &RgbaImage,
        lm: &facecraft_pipeline::face::FaceLandmarks,
        fidelity: f32,
    ) -> RgbaImage {
        let mut out = photo.clone();
        restore::restore(
            &mut out,
            lm.eye_left,
            lm.eye_right,
            restorer(),
            &RestoreParams { fidelity },
        )
        .unwrap();
        out
    }

    #[test]
    fn restoration_changes_only_the_face_under_the_mask() {
        let (photo, lm) = astronaut_and_face();
        let out = restored(&photo, &lm, 0.0);
        assert_eq!(out.dimensions(), photo.dimensions());
        let to_face = face_transform(lm.eye_left, lm.eye_right, 512).unwrap();
        let mask = face_mask(512);
        let (mut inside, mut changed) = (0u32, 0u32);
        for (x, y, p) in out.enumerate_pixels() {
            let o = photo.get_pixel(x, y);
            assert_eq!(p.0[3], o.0[3], "alpha kept at {x},{y}");
            if under_mask(&to_face, &mask, x, y) {
                inside += 1;
                changed += u32::from(p != o);
            } else {
                assert_eq!(p, o, "pixel {x},{y} outside the face mask changed");
            }
        }
        // The face (eyes ~45 px apart) covers a few thousand pixels of the photo; the network
        // repaints most of them.
        assert!(inside > 4_000, "{inside} pixels under the mask");
        assert!(
            changed * 2 > inside,
            "{changed} of {inside} pixels under the mask changed"
        );
        // At the midpoint between the eyes the mask is full: the restored pixel is there.
        let mid = [
            ((lm.eye_left[0] + lm.eye_right[0]) / 2.0) as u32,
            ((lm.eye_left[1] + lm.eye_right[1]) / 2.0) as u32,
        ];
        let mut face = restore::cut_face(&photo, &to_face, 512);
        face = restorer().restore(&face).unwrap();
        let [fx, fy] = to_face.apply_f64([f64::from(mid[0]) + 0.5, f64::from(mid[1]) + 0.5]);
        let want = face.get_pixel(fx as u32, fy as u32).0;
        let got = out.get_pixel(mid[0], mid[1]).0;
        for c in 0..3 {
            assert!(
                (i32::from(want[c]) - i32::from(got[c])).abs() <= 40,
                "restored colour at the eyes' midpoint: {got:?} vs the network's {want:?}"
            );
        }
    }

    #[test]
    fn fidelity_one_is_the_original_and_half_is_halfway() {
        let (photo, lm) = astronaut_and_face();
        let run = |fidelity: f32| restored(&photo, &lm, fidelity);
        assert_eq!(run(1.0), photo);
        let (full, half) = (run(0.0), run(0.5));
        let mut worst = 0i32;
        for ((o, f), h) in photo.pixels().zip(full.pixels()).zip(half.pixels()) {
            for c in 0..3 {
                // Rounded twice (full and half each once): within one level of halfway.
                let want = (i32::from(o.0[c]) + i32::from(f.0[c])) as f32 / 2.0;
                worst = worst.max(((i32::from(h.0[c]) as f32 - want).abs()).ceil() as i32);
            }
        }
        assert!(worst <= 1, "half fidelity off halfway by {worst} levels");
    }

    #[test]
    fn a_restore_job_renders_through_the_pipeline() {
        let png = astronaut_png();
        let params = JobParams {
            restore: true,
            enhance_fidelity: 0.3,
            formats: vec![Format::Png],
            ..quick()
        };
        let mut stages = Vec::new();
        let portrait = facecraft_pipeline::portrait::render(
            &png,
            &params,
            &Default::default(),
            gpu_engines(),
            &mut |s| {
                stages.push(s.name());
                true
            },
        )
        .unwrap();
        assert!(stages.contains(&"restore"), "{stages:?}");
        assert!(portrait.timings.iter().any(|(s, _)| *s == "restore"));
        let plain = facecraft_pipeline::portrait::render(
            &png,
            &JobParams {
                restore: false,
                ..params.clone()
            },
            &Default::default(),
            gpu_engines(),
            &mut |_| true,
        )
        .unwrap();
        let decode = |p: &facecraft_pipeline::portrait::Portrait| {
            image::load_from_memory(&p.outputs[0].bytes)
                .unwrap()
                .to_rgba8()
        };
        let (a, b) = (decode(&portrait), decode(&plain));
        assert_eq!(a.dimensions(), b.dimensions());
        assert_ne!(a, b, "restoration changed nothing");
        // The framing is the same: the face box found is the same.
        assert_eq!(portrait.face, plain.face);
    }

    #[test]
    fn a_missing_model_file_is_named_at_start() {
        let empty =
            std::env::temp_dir().join(format!("facecraft-no-models-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        // Everything but the restoration network: the error must be about that file.
        let landmarks = "shape_predictor_5_face_landmarks.dat";
        let models = EngineSettings::from_env_for_tests().models_dir;
        std::os::unix::fs::symlink(
            std::fs::canonicalize(models.join(landmarks)).unwrap(),
            empty.join(landmarks),
        )
        .ok();
        let s = EngineSettings {
            models_dir: empty.clone(),
            detectors: Vec::new(),
            segmentation_models: Vec::new(),
            ..settings()
        };
        let e = Engines::load(&s).unwrap_err().to_string();
        assert!(
            e.contains(&empty.join(GFPGAN_FILE).display().to_string()),
            "{e}"
        );
        std::fs::remove_dir_all(&empty).ok();
    }

    /// Three faces restored at once through the batch-4 trace (padded) are the faces the
    /// batch-1 trace gives one by one.
    #[test]
    fn batched_restoration_gives_each_face_its_own_result() {
        let s = EngineSettings {
            detectors: Vec::new(),
            segmentation_models: Vec::new(),
            batch_max: 4,
            batch_wait_ms: 300,
            ..settings()
        };
        let batched = std::sync::Arc::new(Engines::load(&s).unwrap());
        let faces: Vec<image::RgbImage> = ["astronaut.png", "hopper.jpg", "obama.jpg"]
            .iter()
            .map(|n| {
                let p = image::open(testdata(n)).unwrap().to_rgb8();
                let side = p.width().min(p.height());
                image::imageops::resize(
                    &DynamicImage::ImageRgb8(p)
                        .crop_imm(0, 0, side, side)
                        .to_rgb8(),
                    512,
                    512,
                    image::imageops::FilterType::Triangle,
                )
            })
            .collect();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(faces.len()));
        let handles: Vec<_> = faces
            .iter()
            .cloned()
            .map(|f| {
                let (e, barrier) = (batched.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    e.restorer().unwrap().restore(&f).unwrap()
                })
            })
            .collect();
        for (f, h) in faces.iter().zip(handles) {
            let together = h.join().unwrap();
            let alone = restorer().restore(f).unwrap();
            let (mut sum, mut worst) = (0u64, 0u8);
            for (a, b) in together.as_raw().iter().zip(alone.as_raw()) {
                let d = a.abs_diff(*b);
                sum += u64::from(d);
                worst = worst.max(d);
            }
            let mean = sum as f64 / together.as_raw().len() as f64;
            eprintln!("batched vs alone: mean {mean:.4}, worst {worst}");
            assert!(mean <= 0.05 && worst <= 4, "mean {mean}, worst {worst}");
        }
    }
}
