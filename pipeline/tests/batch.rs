//! Cross-job batched inference with the real U²-Net (the batch-axis file of
//! scripts/patch-onnx-batch) on real photos: jobs running at once share batches, and each gets
//! the matte it would have got alone.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Barrier};

use facecraft_contract::job::SegmentationModel;
use facecraft_pipeline::engines::{EngineSettings, Engines};
use image::{DynamicImage, GrayImage, RgbImage};
use support::{engines, testdata};

fn photo(name: &str) -> RgbImage {
    image::open(testdata(name)).unwrap().to_rgb8()
}

fn batched(max: usize) -> EngineSettings {
    EngineSettings {
        detectors: Vec::new(),
        segmentation_models: vec!["u2netp".into()],
        batch_max: max,
        // Long enough that four threads released together always meet in one batch.
        batch_wait_ms: 300,
        ..EngineSettings::from_env_for_tests()
    }
}

fn max_diff(a: &GrayImage, b: &GrayImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.pixels()
        .zip(b.pixels())
        .map(|(p, q)| p.0[0].abs_diff(q.0[0]))
        .max()
        .unwrap_or(0)
}

#[test]
fn concurrent_jobs_get_the_mattes_they_would_get_alone() {
    let engines_batched = Arc::new(Engines::load(&batched(4)).unwrap());
    let photos: Vec<RgbImage> = ["astronaut.png", "hopper.jpg", "obama.jpg", "camera.png"]
        .iter()
        .map(|n| photo(n))
        .collect();
    // Different sizes on purpose: each is resized to the model's square on its own job.
    let photos: Vec<RgbImage> = photos
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let w = p.width() - 40 * i as u32;
            DynamicImage::ImageRgb8(p).crop_imm(0, 0, w, w).to_rgb8()
        })
        .collect();
    let barrier = Arc::new(Barrier::new(photos.len()));
    let handles: Vec<_> = photos
        .iter()
        .cloned()
        .map(|p| {
            let (e, barrier) = (engines_batched.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                e.segmenter(SegmentationModel::U2netp)
                    .unwrap()
                    .matte(&p)
                    .unwrap()
            })
        })
        .collect();
    let alone = engines().segmenter(SegmentationModel::U2netp).unwrap();
    for (p, h) in photos.iter().zip(handles) {
        let together = h.join().unwrap();
        let single = alone.matte(p).unwrap();
        assert_eq!(together.dimensions(), p.dimensions());
        // The same network on the same numbers; only the kernels' summation order may differ
        // between batch sizes (≤ 1e-4 before the 8-bit matte, see scripts/patch-onnx-batch).
        let d = max_diff(&together, &single);
        assert!(
            d <= 1,
            "batched matte differs from the single one by {d} levels"
        );
    }
}

#[test]
fn batching_without_the_batch_axis_file_fails_at_start_naming_it() {
    let dir = std::env::temp_dir().join(format!("facecraft-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let models = EngineSettings::from_env_for_tests().models_dir;
    for f in ["u2netp.onnx", "shape_predictor_5_face_landmarks.dat", "lib"] {
        std::os::unix::fs::symlink(std::fs::canonicalize(models.join(f)).unwrap(), dir.join(f))
            .ok();
    }
    let s = EngineSettings {
        models_dir: dir.clone(),
        ..batched(4)
    };
    let e = Engines::load(&s).unwrap_err().to_string();
    assert!(e.contains("u2netp.batch.onnx"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_batch_settings_are_checked() {
    for (max, wait) in [(0, 5), (65, 5), (4, 5_000)] {
        let s = EngineSettings {
            batch_max: max,
            batch_wait_ms: wait,
            ..EngineSettings::from_env_for_tests()
        };
        assert!(s.validate().is_err(), "{max} {wait}");
    }
}
