//! Faces that are not simple: none, many, tiny, at the edge of the frame, under transparent
//! pixels — a portrait of the right face or one exact stable code, never a wrong crop.
#![allow(clippy::unwrap_used)]

mod support;

use facecraft_contract::job::{FacePolicy, QualityWarning};
use image::{imageops, Rgba, RgbaImage};

use support::*;

// ---------------------------------------------------------------------------------------------
// Faces: none, many, tiny, at the edge
// ---------------------------------------------------------------------------------------------

#[test]
fn no_face_is_no_face_detected() {
    // Small on purpose: "no face" runs every detector and four turned copies.
    let gradient = RgbaImage::from_fn(96, 80, |x, y| {
        Rgba([(x * 2) as u8, (y * 3) as u8, 128, 255])
    });
    expect_code("gradient", &png(&gradient), &quick(), "no_face_detected");
}

#[test]
fn many_faces_follow_the_policy() {
    // Three copies of the photo at 80 %, 100 % and 85 % (smaller faces than ~70 px are past
    // what the upright detectors find at this size): `largest` takes the middle one, `error`
    // refuses.
    let row = side_by_side(&[
        scaled(astronaut(), 0.8),
        astronaut().clone(),
        scaled(astronaut(), 0.85),
    ]);
    let bytes = png(&row);
    let p = expect_portrait("three faces, largest", &bytes, &quick());
    let face = p.face.unwrap();
    assert_eq!(face.faces_found, 3, "{face:?}");
    let reference = reference_face();
    let left = 512.0 * 0.8;
    assert!(
        (face.bbox.x - (left + reference.x)).abs() <= 8.0
            && (face.bbox.width - reference.width).abs() <= 8.0,
        "the full-size copy is chosen: {:?} (reference {reference:?} + {left})",
        face.bbox
    );
    let mut strict = quick();
    strict.face_policy = FacePolicy::Error;
    expect_code(
        "three faces, policy error",
        &bytes,
        &strict,
        "multiple_faces",
    );
}

#[test]
fn a_tiny_face_is_face_too_small_and_a_speck_is_no_face() {
    // ~30 px wide: the detector chain still finds and confirms it, but a portrait needs a face
    // box of 40 px on each side (crop::CropParams::min_face_px), so the crop refuses:
    // face_too_small, which tells the user what to do (a closer photo).
    let tiny = scaled(astronaut(), 160.0 / 512.0);
    let mut canvas = RgbaImage::from_pixel(900, 700, Rgba([200, 200, 200, 255]));
    imageops::replace(&mut canvas, &tiny, 370, 270);
    expect_code("30-px face", &png(&canvas), &quick(), "face_too_small");
    // ~8 px wide: below what any detector sees, so nothing is found at all.
    let speck = scaled(astronaut(), 44.0 / 512.0);
    let mut canvas = RgbaImage::from_pixel(160, 120, Rgba([200, 200, 200, 255]));
    imageops::replace(&mut canvas, &speck, 58, 38);
    expect_code("8-px face", &png(&canvas), &quick(), "no_face_detected");
}

#[test]
fn a_face_at_the_edge_is_centred_and_padded_and_a_cut_face_is_refused() {
    let reference = reference_face();
    // The photo cut 4 px left of the face box: the face touches the left edge but is whole.
    // The frame stays centred on the eyes at the standard size, the part of it beyond the
    // photo is background, and the report says so.
    let cut = (reference.x - 4.0).max(0.0) as u32;
    let img = imageops::crop_imm(astronaut(), cut, 0, 512 - cut, 512).to_image();
    let p = expect_portrait("face at the left edge", &png(&img), &quick());
    let face = p.face.as_ref().unwrap();
    assert_eq!(face.faces_found, 1);
    assert!(
        (face.bbox.x - (reference.x - cut as f32)).abs() <= 6.0,
        "{:?}",
        face.bbox
    );
    let q = p.quality.as_ref().expect("a quality report");
    assert!(q.eye_offset_pct.abs() < 3.0, "centred: {q:?}");
    assert!(q.padded_pct > 5.0, "the fill is reported: {q:?}");
    assert!(q.warnings.contains(&QualityWarning::Padded), "{q:?}");
    // Cut through the middle of the face: the detectors still see half a face with both
    // eyes, but half of it is missing — face_cut_off, never a portrait of half a face.
    let cut = (reference.x + reference.width / 2.0) as u32;
    let img = imageops::crop_imm(astronaut(), cut, 0, 512 - cut, 512).to_image();
    expect_code("face cut in half", &png(&img), &quick(), "face_cut_off");
    // Cut a third of the way in from the right.
    let keep = (reference.x + reference.width * 0.7) as u32;
    let img = imageops::crop_imm(astronaut(), 0, 0, keep, 512).to_image();
    expect_code(
        "face cut on the right",
        &png(&img),
        &quick(),
        "face_cut_off",
    );
    // The photo starting at the top of the face box: the forehead is cut.
    let top = reference.y as u32;
    let img = imageops::crop_imm(astronaut(), 0, top, 512, 512 - top).to_image();
    expect_code(
        "face cut at the forehead",
        &png(&img),
        &quick(),
        "face_cut_off",
    );
}

#[test]
fn faces_under_transparent_pixels_are_not_used() {
    // Regression (found by this corpus, fixed): detection runs on the RGB channels with alpha dropped (portrait::render,
    // `to_rgb8` of the decoded RGBA), so a face the user cannot see (alpha 0, as editors
    // leave the colour under erased areas) is found and, being larger, chosen: the job
    // "succeeds" with a portrait of transparent pixels, i.e. an empty background card.
    // Detecting on the image flattened onto a plain colour would fix it.
    let mut hidden = astronaut().clone();
    for p in hidden.pixels_mut() {
        p.0[3] = 0;
    }
    let row = side_by_side(&[scaled(astronaut(), 0.8), hidden.clone()]);
    let p = expect_portrait("visible face + larger invisible one", &png(&row), &quick());
    let face = p.face.unwrap();
    assert_eq!(
        face.faces_found, 1,
        "only the visible face counts: {face:?}"
    );
    assert!(
        face.bbox.x < 410.0,
        "the visible (left) face is used: {:?}",
        face.bbox
    );
    // Nothing visible at all: no face.
    expect_code(
        "fully transparent photo",
        &png(&hidden),
        &quick(),
        "no_face_detected",
    );
}
