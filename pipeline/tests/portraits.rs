//! The portrait a person accepts, checked on its content: real photos and simple variants of
//! them (grey, CMYK, every EXIF orientation, WebP, turned, scaled) give a level, centred
//! head and shoulders with no leftover background; what is not a whole human face is
//! refused; every preset meets its rule; the quality report warns where it should and only
//! there.
#![allow(clippy::unwrap_used)]

mod support;

use facecraft_contract::job::{Format, JobParams, Preset, QualityPolicy, QualityWarning};
use facecraft_pipeline::face::FaceLandmarks;
use facecraft_pipeline::portrait::Portrait;
use image::{imageops, DynamicImage, ImageFormat, Rgb, RgbImage, RgbaImage};

use support::*;

fn photo(name: &str) -> RgbImage {
    image::open(testdata(name)).unwrap().to_rgb8()
}

/// Transparent PNG without the oval, so the matte itself can be measured.
fn measurable() -> JobParams {
    JobParams {
        transparent: true,
        oval_mask: false,
        formats: vec![Format::Png],
        ..JobParams::default()
    }
}

fn output(p: &Portrait) -> RgbaImage {
    let o = p.outputs.iter().find(|o| o.format == Format::Png).unwrap();
    image::load_from_memory(&o.bytes).unwrap().to_rgba8()
}

/// Landmarks found afresh on the output (flattened onto grey), by the same engines.
fn landmarks_on(img: &RgbaImage) -> FaceLandmarks {
    let flat = RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let [r, g, b, a] = img.get_pixel(x, y).0;
        let mix = |c: u8| ((u32::from(c) * u32::from(a) + 128 * (255 - u32::from(a))) / 255) as u8;
        Rgb([mix(r), mix(g), mix(b)])
    });
    engines()
        .measure_face(&flat)
        .unwrap()
        .unwrap_or_else(|| panic!("no face found on the output"))
}

fn eye_mid(lm: &FaceLandmarks) -> [f32; 2] {
    [
        (lm.eye_left[0] + lm.eye_right[0]) / 2.0,
        (lm.eye_left[1] + lm.eye_right[1]) / 2.0,
    ]
}

fn roll_deg(lm: &FaceLandmarks) -> f32 {
    (lm.eye_right[1] - lm.eye_left[1])
        .atan2(lm.eye_right[0] - lm.eye_left[0])
        .to_degrees()
}

/// Pixels with alpha ≥ 32 farther than `reach` px (square distance) from the person: the
/// largest 8-connected region of alpha ≥ 64 (a quarter opaque: hair and a cap's crown are
/// rightly translucent in a matte). Leftover background shows up here.
fn stray_pixels(img: &RgbaImage, reach: usize) -> usize {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let solid: Vec<bool> = img.pixels().map(|p| p.0[3] >= 64).collect();
    let mut label = vec![0u32; solid.len()];
    let (mut best, mut best_size, mut next) = (0u32, 0usize, 0u32);
    for start in 0..solid.len() {
        if !solid[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        let mut size = 0;
        let mut stack = vec![start];
        label[start] = next;
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = (i % w, i / w);
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if solid[j] && label[j] == 0 {
                        label[j] = next;
                        stack.push(j);
                    }
                }
            }
        }
        if size > best_size {
            (best, best_size) = (next, size);
        }
    }
    // Square dilation of the person by `reach`, rows then columns.
    let person: Vec<bool> = label.iter().map(|&l| l == best && best != 0).collect();
    let mut rows = vec![false; person.len()];
    for y in 0..h {
        for x in 0..w {
            let lo = x.saturating_sub(reach);
            let hi = (x + reach).min(w - 1);
            rows[y * w + x] = (lo..=hi).any(|i| person[y * w + i]);
        }
    }
    let mut near = vec![false; person.len()];
    for y in 0..h {
        for x in 0..w {
            let lo = y.saturating_sub(reach);
            let hi = (y + reach).min(h - 1);
            near[y * w + x] = (lo..=hi).any(|j| rows[j * w + x]);
        }
    }
    img.pixels()
        .zip(&near)
        .filter(|(p, n)| p.0[3] >= 32 && !**n)
        .count()
}

/// The opaque extent (first to last pixel with alpha ≥ 128) of row `y`, as a share of the
/// width.
fn row_span(img: &RgbaImage, y: u32) -> f32 {
    let xs: Vec<u32> = (0..img.width())
        .filter(|&x| img.get_pixel(x, y).0[3] >= 128)
        .collect();
    match (xs.first(), xs.last()) {
        (Some(a), Some(b)) => (b - a + 1) as f32 / img.width() as f32,
        _ => 0.0,
    }
}

/// Everything a head-and-shoulders portrait must be.
#[track_caller]
fn assert_good_portrait(what: &str, bytes: &[u8]) {
    let params = measurable();
    let p = expect_portrait(what, bytes, &params);
    let img = output(&p);
    if let Some(dir) = std::env::var_os("FACECRAFT_TEST_DUMP") {
        let _ = img.save(std::path::Path::new(&dir).join(format!("{what}.png")));
    }
    let (w, h) = img.dimensions();
    let span = row_span(&img, (0.85 * h as f32) as u32);
    assert!(
        span >= 0.5,
        "{what}: shoulders span {span:.2} of the width at 85 % height"
    );
    let stray = stray_pixels(&img, 6);
    assert_eq!(
        stray, 0,
        "{what}: {stray} pixels of leftover background off the person"
    );
    let lm = landmarks_on(&img);
    let roll = roll_deg(&lm);
    assert!(roll.abs() <= 1.5, "{what}: eye line at {roll:.2}°");
    let offset = (eye_mid(&lm)[0] - w as f32 / 2.0) / w as f32;
    assert!(
        offset.abs() <= 0.03,
        "{what}: eyes {:.1} % off centre",
        100.0 * offset
    );
    let q = p.quality.as_ref().expect("a quality report");
    assert!(
        q.eye_tilt_deg.abs() <= 1.5 && q.eye_offset_pct.abs() <= 3.0,
        "{what}: {q:?}"
    );
}

/// The photo and its variants, as (name, file bytes).
fn variants(name: &str) -> Vec<(String, Vec<u8>)> {
    let rgb = photo(name);
    let dynamic = DynamicImage::ImageRgb8(rgb.clone());
    let mut out = vec![
        (name.to_owned(), encode(&dynamic, ImageFormat::Png)),
        (
            format!("{name} grey"),
            encode(
                &DynamicImage::ImageLuma8(dynamic.to_luma8()),
                ImageFormat::Png,
            ),
        ),
        (format!("{name} CMYK"), cmyk_jpeg(&rgb)),
        (format!("{name} WebP"), encode(&dynamic, ImageFormat::WebP)),
    ];
    for o in 1..=8u16 {
        out.push((
            format!("{name} EXIF {o}"),
            with_app1(&jpeg(&stored_for(&rgb, o), 92), &exif_orientation(o)),
        ));
    }
    for deg in [-15.0, 15.0] {
        out.push((
            format!("{name} turned {deg}°"),
            encode(
                &DynamicImage::ImageRgb8(turned(&rgb, deg)),
                ImageFormat::Png,
            ),
        ));
    }
    for factor in [0.6f32, 2.0] {
        let (w, h) = (
            (rgb.width() as f32 * factor).round() as u32,
            (rgb.height() as f32 * factor).round() as u32,
        );
        let resized = imageops::resize(&rgb, w, h, imageops::FilterType::CatmullRom);
        out.push((
            format!("{name} ×{factor}"),
            encode(&DynamicImage::ImageRgb8(resized), ImageFormat::Png),
        ));
    }
    out
}

#[test]
fn astronaut_and_its_variants_are_head_and_shoulders_portraits() {
    for (what, bytes) in variants("astronaut.png") {
        assert_good_portrait(&what, &bytes);
    }
}

#[test]
fn hopper_and_its_variants_are_head_and_shoulders_portraits() {
    for (what, bytes) in variants("hopper.jpg") {
        assert_good_portrait(&what, &bytes);
    }
}

#[test]
fn obama_and_its_variants_are_head_and_shoulders_portraits() {
    for (what, bytes) in variants("obama.jpg") {
        assert_good_portrait(&what, &bytes);
    }
}

#[test]
fn what_is_not_a_human_face_is_never_a_portrait() {
    let file = |n: &str| std::fs::read(testdata(n)).unwrap();
    expect_code(
        "coffee",
        &file("coffee.png"),
        &measurable(),
        "no_face_detected",
    );
    // Animals: the photos as they are, enlarged (where detectors see more), turned.
    for animal in ["chelsea.png", "dog.jpg"] {
        let rgb = photo(animal);
        let mut cases = vec![(animal.to_owned(), file(animal))];
        for factor in [1.5f32, 2.0] {
            let (w, h) = (
                (rgb.width() as f32 * factor).round() as u32,
                (rgb.height() as f32 * factor).round() as u32,
            );
            let big = imageops::resize(&rgb, w, h, imageops::FilterType::CatmullRom);
            cases.push((format!("{animal} ×{factor}"), png_of(&big)));
        }
        cases.push((
            format!("{animal} upside down"),
            png_of(&imageops::rotate180(&rgb)),
        ));
        for (what, bytes) in cases {
            expect_code(&what, &bytes, &measurable(), "no_face_detected");
        }
    }
}

#[test]
fn a_small_turned_photo_is_levelled_and_reported_low_resolution() {
    let bytes = std::fs::read(testdata("hopper_45.png")).unwrap();
    let p = expect_portrait("hopper_45", &bytes, &measurable());
    let lm = landmarks_on(&output(&p));
    assert!(
        roll_deg(&lm).abs() <= 1.5,
        "eye line at {:.2}°",
        roll_deg(&lm)
    );
    let q = p.quality.unwrap();
    assert!(q.warnings.contains(&QualityWarning::LowResolution), "{q:?}");
    assert!(q.upscale > 2.0, "{q:?}");
}

fn png_of(img: &RgbImage) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Png)
}

fn map_levels(img: &RgbImage, f: impl Fn(f32) -> f32) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in &mut p.0 {
            *c = f(f32::from(*c)).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[test]
fn each_quality_warning_shows_where_it_should_and_nowhere_else() {
    // A frame that the photo fills (no padding), so the sharp original is clean.
    let params = JobParams {
        face_margin: 0.2,
        formats: vec![Format::Png],
        ..JobParams::default()
    };
    let sharp = photo("obama.jpg");
    let cases: Vec<(&str, RgbImage, Vec<QualityWarning>)> = vec![
        ("sharp", sharp.clone(), vec![]),
        (
            "blurred",
            imageops::blur(&sharp, 4.0),
            vec![QualityWarning::Blurry],
        ),
        (
            "darkened",
            map_levels(&sharp, |v| v * 0.12),
            vec![QualityWarning::Dark],
        ),
        (
            "overexposed",
            map_levels(&sharp, |v| v * 2.6),
            vec![QualityWarning::Overexposed],
        ),
    ];
    for (what, img, want) in &cases {
        let p = expect_portrait(what, &png_of(img), &params);
        let q = p.quality.unwrap();
        assert_eq!(&q.warnings, want, "{what}: {q:?}");
        // Strict: the same warnings fail the job, and a clean portrait passes.
        let strict = JobParams {
            quality: QualityPolicy::Strict,
            ..params.clone()
        };
        match render_with(&png_of(img), &strict) {
            Ok(_) => assert!(
                want.is_empty(),
                "{what}: strict let warnings {want:?} through"
            ),
            Err((code, message)) => {
                assert!(
                    !want.is_empty(),
                    "{what}: strict failed a clean portrait: {message}"
                );
                assert_eq!(code, "quality_rejected", "{what}: {message}");
                for w in want {
                    assert!(message.contains(w.name()), "{what}: {message}");
                }
            }
        }
    }
    // A head turned to the side (the cameraman looks down at his camera).
    let bytes = std::fs::read(testdata("camera.png")).unwrap();
    let q = expect_portrait("camera", &bytes, &params).quality.unwrap();
    assert!(q.warnings.contains(&QualityWarning::TurnedHead), "{q:?}");
    assert!(q.yaw_deg.abs() > 20.0, "{q:?}");
}

/// Crown (top of the opaque silhouette above the eyes) and eyes measured on a transparent
/// output; the chin placed 1.85 inter-ocular distances below the measured eyes.
fn head_on(img: &RgbaImage) -> (f32, f32, f32) {
    let lm = landmarks_on(img);
    let [ex, ey] = eye_mid(&lm);
    let iod = (lm.eye_right[0] - lm.eye_left[0]).hypot(lm.eye_right[1] - lm.eye_left[1]);
    let mut tops: Vec<f32> = (-5..=5)
        .map(|dx| {
            let x = (ex + dx as f32 * iod / 20.0) as u32;
            let mut y = ey as u32;
            while y > 0 && img.get_pixel(x, y).0[3] >= 128 {
                y -= 1;
            }
            y as f32
        })
        .collect();
    tops.sort_by(f32::total_cmp);
    (tops[tops.len() / 2], ey, ey + 1.85 * iod)
}

#[test]
fn every_preset_meets_its_rule() {
    let bytes = png_of(&photo("obama.jpg"));
    for preset in Preset::ALL {
        let params: JobParams = serde_json::from_value(serde_json::json!({
            "preset": preset.name(),
            "transparent": true,
            "formats": ["png", "jpg"],
        }))
        .unwrap();
        let p = expect_portrait(preset.name(), &bytes, &params);
        let img = output(&p);
        let (w, h) = img.dimensions();
        let (crown, eye, chin) = head_on(&img);
        let hf = h as f32;
        let head = (chin - crown) / hf;
        let eyes_from_bottom = (hf - eye) / hf;
        let what = format!(
            "{}: head {head:.3}, eyes {eyes_from_bottom:.3} from the bottom",
            preset.name()
        );
        match preset {
            Preset::Ad => {
                assert_eq!((w, h), (648, 648));
                let jpg = p.outputs.iter().find(|o| o.format == Format::Jpg).unwrap();
                assert!(
                    jpg.bytes.len() <= 101_376,
                    "{what}: JPEG of {} bytes",
                    jpg.bytes.len()
                );
                assert!((0.42..=0.58).contains(&head), "{what}");
            }
            Preset::Passport => {
                // 35×45 mm at 300 dpi; chin to crown 70-80 % of the height.
                assert_eq!((w, h), (413, 531));
                assert!((0.70..=0.80).contains(&head), "{what}");
            }
            Preset::UsVisa => {
                assert_eq!((w, h), (600, 600));
                assert!((0.50..=0.69).contains(&head), "{what}");
                assert!((0.56..=0.69).contains(&eyes_from_bottom), "{what}");
            }
            Preset::Badge => {
                assert_eq!((w, h), (480, 640));
                assert!((0.42..=0.58).contains(&head), "{what}");
            }
        }
        if let Some(inches) = preset.print_height_in() {
            // A physical photo carries its print resolution: 300 dpi at the preset's size.
            assert!((f64::from(h) / inches - 300.0).abs() < 1.0, "{what}");
            let png = &p
                .outputs
                .iter()
                .find(|o| o.format == Format::Png)
                .unwrap()
                .bytes;
            assert_eq!(
                &png[37..45],
                b"pHYs\0\0\x2e\x23",
                "{what}: PNG pHYs 11811 px/m"
            );
            let jpg = &p
                .outputs
                .iter()
                .find(|o| o.format == Format::Jpg)
                .unwrap()
                .bytes;
            assert_eq!(
                (jpg[13], &jpg[14..16]),
                (1, &300u16.to_be_bytes()[..]),
                "{what}: JFIF dpi"
            );
        }
        if preset != Preset::Ad {
            // No oval: the corners beside the shoulders are the plain background.
            assert_eq!(img.get_pixel(0, 0).0[3], 0, "{what}: top corner");
        }
    }
}

#[test]
fn a_preset_yields_to_the_parameters_given_with_it() {
    let params: JobParams = serde_json::from_value(serde_json::json!({
        "preset": "passport",
        "width": 826,
        "height": 1062,
    }))
    .unwrap();
    assert_eq!((params.width, params.height), (826, 1062));
    assert!(!params.oval_mask, "the rest still comes from the preset");
    assert_eq!(params.preset, Some(Preset::Passport));
    let unknown = serde_json::from_value::<JobParams>(serde_json::json!({"preset": "selfie"}));
    assert!(unknown.unwrap_err().to_string().contains("unknown preset"));
}
