//! Contact sheet: the portraits of every test photo and of simple variants of it (grey, CMYK,
//! EXIF-rotated, WebP, turned ±15°, scaled ×0.6 and ×2), and of one photo in every preset, on
//! one PNG to look at, with an index naming each tile and its result (warnings or error code).
//!
//!     scripts/contact-sheet [OUT_DIR]        # default out/contact-sheet
//!
//! Tiles are 216 px high on a checkerboard (transparency shows); a failed photo is a red tile.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::PathBuf;

use facecraft_contract::job::{Format, JobParams, Preset};
use image::{imageops, DynamicImage, ImageFormat, RgbImage, Rgba, RgbaImage};

use support::{
    cmyk_jpeg, encode, exif_orientation, jpeg, render_with, stored_for, testdata, turned, with_app1,
};

const TILE: u32 = 216;
const PHOTOS: [&str; 8] = [
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "dog.jpg",
    "hopper.jpg",
    "hopper_45.png",
    "obama.jpg",
];

fn variants(name: &str) -> Vec<(String, Vec<u8>)> {
    let original = std::fs::read(testdata(name)).expect("test photo");
    let rgb = image::load_from_memory(&original)
        .expect("decodes")
        .to_rgb8();
    let dynamic = DynamicImage::ImageRgb8(rgb.clone());
    let png = |img: RgbImage| encode(&DynamicImage::ImageRgb8(img), ImageFormat::Png);
    let scale = |f: f32| {
        let (w, h) = (
            (rgb.width() as f32 * f).round() as u32,
            (rgb.height() as f32 * f).round() as u32,
        );
        png(imageops::resize(
            &rgb,
            w,
            h,
            imageops::FilterType::CatmullRom,
        ))
    };
    vec![
        (name.to_owned(), original),
        (
            "grey".into(),
            encode(
                &DynamicImage::ImageLuma8(dynamic.to_luma8()),
                ImageFormat::Png,
            ),
        ),
        ("CMYK".into(), cmyk_jpeg(&rgb)),
        (
            "EXIF 6".into(),
            with_app1(&jpeg(&stored_for(&rgb, 6), 92), &exif_orientation(6)),
        ),
        ("WebP".into(), encode(&dynamic, ImageFormat::WebP)),
        ("-15°".into(), png(turned(&rgb, -15.0))),
        ("+15°".into(), png(turned(&rgb, 15.0))),
        ("×0.6".into(), scale(0.6)),
        ("×2".into(), scale(2.0)),
    ]
}

/// The portrait as a tile (on a checkerboard), or a red tile for a failure.
fn tile(result: &Result<RgbaImage, String>) -> RgbaImage {
    let mut canvas = RgbaImage::from_fn(TILE, TILE, |x, y| {
        let v = if (x / 12 + y / 12) % 2 == 0 { 200 } else { 170 };
        Rgba([v, v, v, 255])
    });
    match result {
        Ok(img) => {
            let w = (img.width() * TILE / img.height()).clamp(1, TILE);
            let small = imageops::resize(img, w, TILE, imageops::FilterType::Triangle);
            imageops::overlay(&mut canvas, &small, i64::from((TILE - w) / 2), 0);
        }
        Err(_) => {
            for p in canvas.pixels_mut() {
                p.0 = [150, 40, 40, 255];
            }
        }
    }
    canvas
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "out/contact-sheet".into()),
    );
    std::fs::create_dir_all(&out).expect("output folder");
    let params = JobParams {
        formats: vec![Format::Png],
        ..JobParams::default()
    };
    let mut rows: Vec<Vec<RgbaImage>> = Vec::new();
    let mut index = String::from(
        "# Contact sheet\n\nRow by row, tile by tile: what each is and what came of it.\n",
    );
    let run = |label: &str,
               bytes: &[u8],
               params: &JobParams,
               row: &mut Vec<RgbaImage>,
               index: &mut String| {
        let result = render_with(bytes, params)
            .map_err(|(code, message)| format!("{code}: {message}"))
            .map(|p| {
                let png = p
                    .outputs
                    .iter()
                    .find(|o| o.format == Format::Png)
                    .expect("png");
                let img = image::load_from_memory(&png.bytes)
                    .expect("decodes")
                    .to_rgba8();
                let warnings = p.quality.map(|q| {
                    q.warnings
                        .iter()
                        .map(|w| w.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                (img, warnings.unwrap_or_default())
            });
        let line = match &result {
            Ok((_, w)) if w.is_empty() => "ok".to_owned(),
            Ok((_, w)) => format!("ok; warnings: {w}"),
            Err(e) => format!("FAILED {e}"),
        };
        let _ = writeln!(index, "- {label}: {line}");
        eprintln!("{label}: {line}");
        row.push(tile(&result.map(|(img, _)| img)));
    };
    for name in PHOTOS {
        let _ = writeln!(index, "\n## {name}\n");
        let mut row = Vec::new();
        for (label, bytes) in variants(name) {
            run(
                &format!("{name} {label}"),
                &bytes,
                &params,
                &mut row,
                &mut index,
            );
        }
        rows.push(row);
    }
    let _ = writeln!(index, "\n## presets (obama.jpg, transparent)\n");
    let obama = std::fs::read(testdata("obama.jpg")).expect("test photo");
    let mut row = Vec::new();
    for preset in Preset::ALL {
        let params: JobParams = serde_json::from_value(serde_json::json!({
            "preset": preset.name(), "transparent": true, "formats": ["png"],
        }))
        .expect("preset params");
        run(preset.name(), &obama, &params, &mut row, &mut index);
    }
    rows.push(row);

    let columns = rows.iter().map(Vec::len).max().unwrap_or(1) as u32;
    let gap = 6;
    let mut sheet = RgbaImage::from_pixel(
        columns * (TILE + gap) + gap,
        rows.len() as u32 * (TILE + gap) + gap,
        Rgba([255, 255, 255, 255]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, t) in row.iter().enumerate() {
            let (x, y) = (gap + c as u32 * (TILE + gap), gap + r as u32 * (TILE + gap));
            imageops::overlay(&mut sheet, t, i64::from(x), i64::from(y));
        }
    }
    let sheet_path = out.join("contact-sheet.png");
    sheet.save(&sheet_path).expect("writing the sheet");
    std::fs::write(out.join("contact-sheet.md"), index).expect("writing the index");
    println!("{}", sheet_path.display());
}
