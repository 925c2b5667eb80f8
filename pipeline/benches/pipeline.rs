//! Pipeline benchmark: per-stage and total milliseconds on astronaut.png for each U²-Net
//! model, next to the model's bare `matte()` time in the same run, so the pipeline's own
//! overhead shows as a ratio. Prints figures; asserts nothing.
//!
//!     scripts/fetch-models --with-u2net     # u2net.onnx is optional; skipped when absent
//!     cargo bench -p facecraft-worker --bench pipeline [-- ITERATIONS]

use std::path::PathBuf;
use std::time::Instant;

use facecraft_contract::job::{JobParams, SegmentationModel};
use facecraft_pipeline::decode::DecodeParams;
use facecraft_pipeline::engines::{segmentation_file, EngineSettings, Engines};
use facecraft_pipeline::portrait::render;
use image::DynamicImage;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7)
        .max(1);
    let photo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/astronaut.png");
    let bytes = std::fs::read(&photo).unwrap_or_else(|e| panic!("{}: {e}", photo.display()));
    let rgb = image::load_from_memory(&bytes)
        .expect("astronaut.png decodes")
        .to_rgb8();
    println!("astronaut.png 512×512, {iterations} iterations after one warm-up, medians in ms");

    for model in [SegmentationModel::U2netp, SegmentationModel::U2net] {
        let mut settings = EngineSettings::from_env_for_tests();
        let name = segmentation_file(model).trim_end_matches(".onnx");
        if !settings.models_dir.join(segmentation_file(model)).exists() {
            println!(
                "\n{name}: skipped ({} not in {}; scripts/fetch-models --with-u2net)",
                segmentation_file(model),
                settings.models_dir.display()
            );
            continue;
        }
        settings.segmentation_models = vec![name.to_owned()];
        let engines = Engines::load(&settings).expect("models load");
        let params = JobParams {
            segmentation_model: model,
            ..JobParams::default()
        };
        let segmenter = engines.segmenter(model).expect("segmenter loaded");

        let mut stages: Vec<(&'static str, Vec<f64>)> = Vec::new();
        let mut totals = Vec::new();
        let mut bare = Vec::new();
        for i in 0..=iterations {
            let t = Instant::now();
            let p = render(
                &bytes,
                &params,
                &DecodeParams::default(),
                &engines,
                &mut |_| true,
            )
            .expect("portrait renders");
            let total = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let _ = segmenter.matte(&rgb).expect("matte");
            let matte = t.elapsed().as_secs_f64() * 1e3;
            if i == 0 {
                continue; // warm-up: first-run allocations and ONNX Runtime's lazy setup
            }
            totals.push(total);
            bare.push(matte);
            for (stage, ms) in p.timings {
                match stages.iter_mut().find(|(s, _)| *s == stage) {
                    Some((_, v)) => v.push(ms as f64),
                    None => stages.push((stage, vec![ms as f64])),
                }
            }
        }
        let total = median(totals);
        let bare = median(bare);
        println!("\n{name}:");
        for (stage, v) in stages {
            println!("  {stage:<10} {:>8.1}", median(v));
        }
        println!("  {:<10} {:>8.1}", "total", total);
        println!("  bare {name}.matte() on the 512² photo (pre + inference + post): {bare:.1} ms");
        println!("  pipeline total / bare segmentation = {:.2}", total / bare);
    }

    // Detectors alone, for scale.
    let engines = Engines::load(&EngineSettings::from_env_for_tests()).expect("models load");
    let gray = DynamicImage::ImageRgb8(rgb.clone()).to_rgb8();
    println!();
    for d in [
        facecraft_contract::job::Detector::Hog,
        facecraft_contract::job::Detector::Retinaface,
        facecraft_contract::job::Detector::Cnn,
    ] {
        let Ok(det) = engines.detector(d) else {
            continue;
        };
        let mut v = Vec::new();
        for i in 0..=iterations {
            let t = Instant::now();
            let _ = det.detect(&gray).expect("detect");
            if i > 0 {
                v.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        println!("detector {:<10} {:>8.1} ms", det.name(), median(v));
    }

    // The JPEG scan walk that decode runs before the codec, against the decode itself, on a
    // 12-megapixel photo-sized JPEG.
    let big = image::imageops::resize(&rgb, 4000, 3000, image::imageops::FilterType::Triangle);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&DynamicImage::ImageRgb8(big))
        .expect("encode");
    let limits = DecodeParams {
        max_bytes: usize::MAX,
        ..DecodeParams::default()
    };
    let (mut walk, mut decode) = (Vec::new(), Vec::new());
    for i in 0..=iterations {
        let t = Instant::now();
        let verdict = facecraft_pipeline::jpeg_scan::check(&jpeg).expect("complete");
        let w = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let _ = facecraft_pipeline::decode::decode(&jpeg, &limits).expect("decodes");
        let d = t.elapsed().as_secs_f64() * 1e3;
        if i > 0 {
            walk.push(w);
            decode.push(d);
        }
        assert_eq!(verdict, facecraft_pipeline::jpeg_scan::Verdict::Complete);
    }
    let (walk, decode) = (median(walk), median(decode));
    println!(
        "\n4000×3000 JPEG ({} KB): scan walk {walk:.1} ms, whole decode (walk included) {decode:.1} ms, walk / decode = {:.2}",
        jpeg.len() / 1024,
        walk / decode
    );
}
