//! The quality report: measurements of the finished portrait a person would check before
//! accepting it, and warnings with stable names where one is off.
//!
//! Everything is measured on the output pixels, with the face's landmarks in the output's
//! coordinates (found again on the output when a landmark model is loaded). Regions:
//! the *face* is the inner face (an ellipse from the brows to the chin, cheek to cheek, no
//! hair); the *background probe* is the frame beside the head, above the eye line.

use facecraft_contract::job::{QualityReport, QualityWarning};
use image::{GrayImage, RgbaImage};

use crate::align::eye_angle;
use crate::face::FaceLandmarks;

/// Thresholds of the warnings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityParams {
    /// `turned_head` above this yaw, degrees.
    pub max_yaw_deg: f32,
    /// `blurry` below this variance of the Laplacian on the face.
    pub min_sharpness: f32,
    /// `dark` below this mean face luminance…
    pub min_luminance: f32,
    /// …`overexposed` above this one.
    pub max_luminance: f32,
    /// `dark` / `overexposed` when more of the face than this (%) is crushed / clipped.
    pub max_clipped_pct: f32,
    /// `padded` above this share of the frame (%).
    pub max_padded_pct: f32,
    /// `low_resolution` above this enlargement (output px per photo px).
    pub max_upscale: f32,
    /// `busy_background` below this uniformity.
    pub min_uniformity: f32,
}

impl Default for QualityParams {
    fn default() -> Self {
        Self {
            max_yaw_deg: 20.0,
            min_sharpness: 25.0,
            min_luminance: 60.0,
            max_luminance: 215.0,
            max_clipped_pct: 15.0,
            max_padded_pct: 2.0,
            max_upscale: 2.0,
            min_uniformity: 0.75,
        }
    }
}

/// What [`measure`] needs besides the pixels, all in output coordinates.
#[derive(Debug, Clone)]
pub struct Measured<'a> {
    /// The face's landmarks in the output.
    pub landmarks: &'a FaceLandmarks,
    /// Head height (chin to crown) in output pixels.
    pub head_height: f32,
    /// Output pixels that lie beyond the photo.
    pub padded_pixels: u64,
    /// Output pixels per photo pixel.
    pub upscale: f32,
    /// The subject's matte in the output, when the background was removed: the background
    /// probe then looks only at what the matte calls background.
    pub matte: Option<&'a GrayImage>,
    /// The face measured before the enhance stage: clipping there counts too.
    pub before: Option<FaceStats>,
}

/// Nose offset from the eye midpoint per inter-ocular distance at 45° of yaw: the nose
/// (base or tip) stands about 0.4 iod in front of the eyes, so the offset is 0.4·tan(yaw).
const NOSE_DEPTH_IOD: f32 = 0.4;

/// Measures `canvas` (the composed output) and lists the warnings.
pub fn measure(canvas: &RgbaImage, m: &Measured<'_>, params: &QualityParams) -> QualityReport {
    let (w, h) = canvas.dimensions();
    let (wf, hf) = (w.max(1) as f32, h.max(1) as f32);
    let lm = m.landmarks;
    let (eye, iod) = eyes(lm);
    let tilt = eye_angle(lm.eye_left, lm.eye_right);
    // The nose's offset along the eye line, so a residual tilt does not read as yaw.
    let (ux, uy) = (
        (lm.eye_right[0] - lm.eye_left[0]) / iod,
        (lm.eye_right[1] - lm.eye_left[1]) / iod,
    );
    let along = ((lm.nose[0] - eye[0]) * ux + (lm.nose[1] - eye[1]) * uy) / iod;
    let yaw = (along / NOSE_DEPTH_IOD).atan().to_degrees();

    let face = face_stats(canvas, lm);
    let before = m.before.unwrap_or(face);
    let (n, face_luminance, sharpness) = (face.pixels, face.mean, face.sharpness);
    // Detail lost before the enhance stage stays lost, however the levels were moved after.
    let crushed_pct = face.crushed_pct.max(before.crushed_pct);
    let clipped_pct = face.clipped_pct.max(before.clipped_pct);

    // With a transparent output, the colour under alpha; the probe skips what is not opaque.
    let luma = |x: u32, y: u32| luma_at(canvas, x, y);
    // Background probe: beside the head (beyond 1.6 iod of the eye midpoint across), above
    // the eye line.
    let (mut bn, mut bsum, mut bsq) = (0u32, 0.0f64, 0.0f64);
    let probe_bottom = eye[1].clamp(0.0, hf) as u32;
    for y in 0..probe_bottom {
        for x in 0..w {
            if (x as f32 + 0.5 - eye[0]).abs() <= 1.6 * iod {
                continue;
            }
            let (a, v) = luma(x, y);
            let subject = m
                .matte
                .is_some_and(|mt| mt.dimensions() == (w, h) && mt.get_pixel(x, y).0[0] >= 128);
            if a < 128 || subject {
                continue;
            }
            bn += 1;
            bsum += f64::from(v);
            bsq += f64::from(v) * f64::from(v);
        }
    }
    let uniformity = if bn == 0 {
        1.0
    } else {
        let mean = bsum / f64::from(bn);
        let sd = (bsq / f64::from(bn) - mean * mean).max(0.0).sqrt();
        (1.0 - sd / 64.0).clamp(0.0, 1.0) as f32
    };

    let padded_pct = 100.0 * m.padded_pixels as f32 / (wf * hf);
    let mut warnings = Vec::new();
    if yaw.abs() > params.max_yaw_deg {
        warnings.push(QualityWarning::TurnedHead);
    }
    if n > 0 && sharpness < params.min_sharpness {
        warnings.push(QualityWarning::Blurry);
    }
    if n > 0 && (face_luminance < params.min_luminance || crushed_pct > params.max_clipped_pct) {
        warnings.push(QualityWarning::Dark);
    }
    if n > 0 && (face_luminance > params.max_luminance || clipped_pct > params.max_clipped_pct) {
        warnings.push(QualityWarning::Overexposed);
    }
    if padded_pct > params.max_padded_pct {
        warnings.push(QualityWarning::Padded);
    }
    if m.upscale > params.max_upscale {
        warnings.push(QualityWarning::LowResolution);
    }
    if uniformity < params.min_uniformity {
        warnings.push(QualityWarning::BusyBackground);
    }
    warnings.sort();

    let round = |v: f32, d: i32| {
        let k = 10f32.powi(d);
        (v * k).round() / k
    };
    QualityReport {
        eye_tilt_deg: round(tilt, 2),
        yaw_deg: round(yaw, 1),
        eye_offset_pct: round(100.0 * (eye[0] - wf / 2.0) / wf, 2),
        eye_height_pct: round(100.0 * (hf - eye[1]) / hf, 1),
        head_height_ratio: round(m.head_height / hf, 3),
        padded_pct: round(padded_pct, 2),
        background_uniformity: round(uniformity, 3),
        sharpness: round(sharpness, 1),
        face_luminance: round(face_luminance, 1),
        face_clipped_pct: round(crushed_pct + clipped_pct, 2),
        upscale: round(m.upscale, 3),
        warnings,
    }
}

/// Luminance measurements of the inner face (an ellipse from the brows to below the mouth,
/// cheek to cheek) of an image whose face has the landmarks `lm`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceStats {
    /// Opaque face pixels measured.
    pub pixels: u32,
    /// Mean luminance, 0-255.
    pub mean: f32,
    /// Pixels at or below 5, %.
    pub crushed_pct: f32,
    /// Pixels at or above 250, %.
    pub clipped_pct: f32,
    /// Variance of the 4-neighbour Laplacian of the luminance, scaled to a face of mean
    /// luminance 128 (the variance grows with the square of contrast, so a dark face would
    /// otherwise read as blurred).
    pub sharpness: f32,
}

/// The eye midpoint and the inter-ocular distance (at least 1).
fn eyes(lm: &FaceLandmarks) -> ([f32; 2], f32) {
    let [l, r] = [lm.eye_left, lm.eye_right];
    let iod = (r[0] - l[0]).hypot(r[1] - l[1]).max(1.0);
    ([(l[0] + r[0]) / 2.0, (l[1] + r[1]) / 2.0], iod)
}

/// Measures the inner face; see [`FaceStats`].
pub fn face_stats(img: &RgbaImage, lm: &FaceLandmarks) -> FaceStats {
    let (w, h) = img.dimensions();
    let (eye, iod) = eyes(lm);
    let (fcx, fcy, fax, fay) = (eye[0], eye[1] + 0.4 * iod, 0.9 * iod, 1.3 * iod);
    let in_face = |x: f32, y: f32| ((x - fcx) / fax).powi(2) + ((y - fcy) / fay).powi(2) <= 1.0;
    let (mut n, mut sum, mut crushed, mut clipped) = (0u32, 0.0f64, 0u32, 0u32);
    let (mut lap_sum, mut lap_sq) = (0.0f64, 0.0f64);
    if w >= 3 && h >= 3 && fcx.is_finite() && fcy.is_finite() {
        let x0 = (fcx - fax).floor().clamp(1.0, (w - 2) as f32) as u32;
        let x1 = (fcx + fax).ceil().clamp(1.0, (w - 2) as f32) as u32;
        let y0 = (fcy - fay).floor().clamp(1.0, (h - 2) as f32) as u32;
        let y1 = (fcy + fay).ceil().clamp(1.0, (h - 2) as f32) as u32;
        let luma = |x: u32, y: u32| luma_at(img, x, y).1;
        for y in y0..=y1 {
            for x in x0..=x1 {
                if !in_face(x as f32 + 0.5, y as f32 + 0.5) {
                    continue;
                }
                let (a, v) = luma_at(img, x, y);
                if a < 250 {
                    continue;
                }
                n += 1;
                sum += f64::from(v);
                crushed += u32::from(v <= 5.0);
                clipped += u32::from(v >= 250.0);
                let lap =
                    luma(x - 1, y) + luma(x + 1, y) + luma(x, y - 1) + luma(x, y + 1) - 4.0 * v;
                lap_sum += f64::from(lap);
                lap_sq += f64::from(lap) * f64::from(lap);
            }
        }
    }
    let nf = f64::from(n.max(1));
    let mean = sum / nf;
    let variance = (lap_sq / nf - (lap_sum / nf).powi(2)).max(0.0);
    let contrast = (mean / 128.0).max(0.05);
    FaceStats {
        pixels: n,
        mean: mean as f32,
        crushed_pct: 100.0 * crushed as f32 / n.max(1) as f32,
        clipped_pct: 100.0 * clipped as f32 / n.max(1) as f32,
        sharpness: (variance / (contrast * contrast)) as f32,
    }
}

fn luma_at(img: &RgbaImage, x: u32, y: u32) -> (u8, f32) {
    let [r, g, b, a] = img.get_pixel(x, y).0;
    (
        a,
        0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    fn landmarks(eye_l: [f32; 2], eye_r: [f32; 2], nose: [f32; 2]) -> FaceLandmarks {
        FaceLandmarks {
            eye_left: eye_l,
            eye_right: eye_r,
            nose,
            points: vec![eye_l, eye_r, nose],
        }
    }

    /// A flat grey canvas with a textured "face" (a checker of `lo`/`hi`) around the eyes.
    fn canvas(lo: u8, hi: u8) -> RgbaImage {
        RgbaImage::from_fn(400, 400, |x, y| {
            let d = ((x as f32 - 200.0) / 90.0).powi(2) + ((y as f32 - 190.0) / 130.0).powi(2);
            if d <= 1.0 {
                let v = if (x / 3 + y / 3) % 2 == 0 { lo } else { hi };
                Rgba([v, v, v, 255])
            } else {
                Rgba([240, 240, 240, 255])
            }
        })
    }

    fn report(c: &RgbaImage, lm: &FaceLandmarks, padded: u64, upscale: f32) -> QualityReport {
        let m = Measured {
            landmarks: lm,
            head_height: 200.0,
            padded_pixels: padded,
            upscale,
            matte: None,
            before: None,
        };
        measure(c, &m, &QualityParams::default())
    }

    #[test]
    fn a_clean_frontal_portrait_has_no_warnings() {
        let lm = landmarks([165.0, 160.0], [235.0, 160.0], [200.0, 200.0]);
        let r = report(&canvas(100, 160), &lm, 0, 1.0);
        assert!(r.warnings.is_empty(), "{r:?}");
        assert!(r.eye_tilt_deg.abs() < 0.01 && r.yaw_deg.abs() < 0.1);
        assert!(r.eye_offset_pct.abs() < 0.01);
        assert_eq!(r.eye_height_pct, 60.0);
        assert_eq!(r.head_height_ratio, 0.5);
    }

    #[test]
    fn each_warning_shows_where_it_should() {
        let lm = landmarks([165.0, 160.0], [235.0, 160.0], [200.0, 200.0]);
        let flat = report(&canvas(130, 130), &lm, 0, 1.0);
        assert_eq!(flat.warnings, vec![QualityWarning::Blurry]);
        let dark = report(&canvas(10, 40), &lm, 0, 1.0);
        assert!(dark.warnings.contains(&QualityWarning::Dark), "{dark:?}");
        assert!(!dark.warnings.contains(&QualityWarning::Overexposed));
        let bright = report(&canvas(230, 255), &lm, 0, 1.0);
        assert!(
            bright.warnings.contains(&QualityWarning::Overexposed),
            "{bright:?}"
        );
        let turned = landmarks([165.0, 160.0], [235.0, 160.0], [225.0, 200.0]);
        let t = report(&canvas(100, 160), &turned, 0, 1.0);
        assert_eq!(t.warnings, vec![QualityWarning::TurnedHead], "{t:?}");
        let padded = report(&canvas(100, 160), &lm, 400 * 400 / 10, 1.0);
        assert_eq!(padded.warnings, vec![QualityWarning::Padded]);
        assert_eq!(padded.padded_pct, 10.0);
        let small = report(&canvas(100, 160), &lm, 0, 3.0);
        assert_eq!(small.warnings, vec![QualityWarning::LowResolution]);
    }

    #[test]
    fn a_busy_background_is_reported() {
        let lm = landmarks([165.0, 160.0], [235.0, 160.0], [200.0, 200.0]);
        let mut c = canvas(100, 160);
        for (x, y, p) in c.enumerate_pixels_mut() {
            if y < 150 && !(60..=340).contains(&x) {
                let v = if (x / 7 + y / 7) % 2 == 0 { 20 } else { 230 };
                *p = Rgba([v, v, v, 255]);
            }
        }
        let r = report(&c, &lm, 0, 1.0);
        assert_eq!(r.warnings, vec![QualityWarning::BusyBackground], "{r:?}");
    }
}
