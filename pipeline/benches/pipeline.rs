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
    encode_section(iterations, &engines);
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

/// PSNR of `b` against `a` over all channels, in dB.
fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let se: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = se / a.as_raw().len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

/// The encode stage's choices, measured on portraits made from the test photos: PNG deflate
/// levels, and the JPEG at the 101376-byte cap (and at a tighter 40 KB one, where the search
/// has work to do) with image's encoder found by bisection (what the pipeline did) against
/// the pipeline's encoder and predicted search.
fn encode_section(iterations: usize, engines: &Engines) {
    use facecraft_pipeline::encode::{encode_jpeg_within, encode_png, JpegParams};
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;

    // The pipeline's own portraits (flat background, oval), read back from its PNG: what the
    // encoders really get.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let portraits: Vec<(&str, image::RgbaImage)> =
        ["astronaut.png", "hopper.jpg", "obama.jpg", "camera.png"]
            .into_iter()
            .map(|name| {
                let bytes = std::fs::read(dir.join(name)).expect("test photo");
                let p = render(
                    &bytes,
                    &JobParams::default(),
                    &DecodeParams::default(),
                    engines,
                    &mut |_| true,
                )
                .expect("portrait renders");
                let png = &p.outputs[0].bytes;
                (name, image::load_from_memory(png).expect("png").to_rgba8())
            })
            .collect();
    let time = |f: &mut dyn FnMut()| {
        let mut v = Vec::new();
        for i in 0..=iterations {
            let t = Instant::now();
            f();
            if i > 0 {
                v.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        median(v)
    };

    println!("\nencode, 648² portraits (ms and bytes, medians):");
    println!(
        "  PNG (RGB, adaptive filter) {:>14} {:>14} {:>14} {:>14} {:>14}",
        "level 6", "level 1", "level 2", "level 3", "fast"
    );
    for (name, img) in &portraits {
        let mut cells = Vec::new();
        for level in [
            CompressionType::Default,
            CompressionType::Level(1),
            CompressionType::Level(2),
            CompressionType::Level(3),
            CompressionType::Fast,
        ] {
            let mut len = 0;
            let ms = time(&mut || {
                let rgb = image::DynamicImage::ImageRgba8(img.clone()).to_rgb8();
                let mut out = Vec::new();
                PngEncoder::new_with_quality(&mut out, level, FilterType::Adaptive)
                    .write_image(rgb.as_raw(), 648, 648, image::ExtendedColorType::Rgb8)
                    .expect("png");
                len = out.len();
            });
            cells.push(format!("{ms:.1} / {}K", len / 1024));
        }
        let ours = encode_png(img, false).expect("png").len();
        println!(
            "  {name:<26} {:>14} {:>14} {:>14} {:>14} {:>14}   (encode_png: {}K)",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            ours / 1024
        );
    }

    for cap in [101_376usize, 40_000] {
        println!("  JPEG at the {cap}-byte cap        quality  encodes   bytes   PSNR dB      ms");
        for (name, img) in &portraits {
            let rgb = image::DynamicImage::ImageRgba8(img.clone()).to_rgb8();
            // Before: image's encoder (standard Huffman tables), max quality then bisection.
            let old = |q: u8| {
                let mut out = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q)
                    .write_image(rgb.as_raw(), 648, 648, image::ExtendedColorType::Rgb8)
                    .expect("jpeg");
                out
            };
            let mut old_result = (0u8, 0usize, Vec::new());
            let old_ms = time(&mut || {
                let mut calls = 1;
                let mut best = old(95);
                let mut q_best = 95;
                if best.len() > cap {
                    let (mut lo, mut hi) = (30u8, 95u8);
                    calls += 1;
                    best = old(30);
                    q_best = 30;
                    while hi - lo > 1 {
                        let mid = lo + (hi - lo) / 2;
                        calls += 1;
                        let b = old(mid);
                        if b.len() <= cap {
                            lo = mid;
                            best = b;
                            q_best = mid;
                        } else {
                            hi = mid;
                        }
                    }
                }
                old_result = (q_best, calls, best);
            });
            let params = JpegParams {
                max_bytes: cap,
                ..JpegParams::default()
            };
            let mut new_result = None;
            let new_ms = time(&mut || {
                new_result = Some(encode_jpeg_within(&rgb, &params).expect("fits"));
            });
            let new_result = new_result.expect("ran");
            let decoded = |b: &[u8]| image::load_from_memory(b).expect("decodes").to_rgb8();
            println!(
                "    {name:<12} before (image, bisection) {:>3} {:>8} {:>8} {:>8.2} {:>8.1}",
                old_result.0,
                old_result.1,
                old_result.2.len(),
                psnr(&rgb, &decoded(&old_result.2)),
                old_ms
            );
            println!(
                "    {name:<12} ours (optimised, predicted) {:>1} {:>8} {:>8} {:>8.2} {:>8.1}   time ratio {:.2}",
                new_result.quality,
                new_result.encodes,
                new_result.bytes.len(),
                psnr(&rgb, &decoded(&new_result.bytes)),
                new_ms,
                new_ms / old_ms
            );
        }
    }
}
