//! Face restoration (DESIGN §6 step 9): the face is cut out of the portrait onto the
//! restoration network's square, with the eyes where the network's training faces had them,
//! restored there, and pasted back through a soft oval, blended by `enhance_fidelity`
//! (0 = the restored face only … 1 = the original).
//!
//! Only RGB changes, and only under the oval: the alpha channel (the matte) and every pixel
//! outside the oval are kept exactly, so restoration cannot move the cut-out or the framing.

use std::sync::OnceLock;

use image::{GrayImage, RgbImage, RgbaImage};

use crate::align::{self, Affine};
use crate::compose;
use crate::face::{EngineError, Rect, Restorer};

/// Eye centres in the 512 × 512 faces GFPGAN was trained on (FFHQ alignment; the first two
/// points of facexlib's five-point template, which GFPGAN's own face helper warps to).
const TEMPLATE_EYES_512: [[f64; 2]; 2] = [[192.98138, 239.94708], [318.90277, 240.1936]];

/// Width of the mask's ramp, as a share of the face square's side: wide enough that the
/// restored skin fades into the original over many pixels, so no seam shows.
const FEATHER: f32 = 0.125;

/// Parameters of one restoration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestoreParams {
    /// 0 = restored only … 1 = original (`enhance_fidelity`).
    pub fidelity: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the restoration network gave a {got_w}x{got_h} face for a {want}x{want} one")]
    WrongSize { want: u32, got_w: u32, got_h: u32 },
    #[error("the eyes coincide, so the face cannot be aligned for restoration")]
    Degenerate,
}

impl RestoreError {
    pub fn code(&self) -> facecraft_contract::ErrorCode {
        match self {
            Self::Engine(e) => e.code(),
            Self::WrongSize { .. } | Self::Degenerate => facecraft_contract::ErrorCode::Internal,
        }
    }
}

/// The similarity transform (rotation, uniform scale, shift) from image coordinates to the
/// `size`² face square that puts `eye_left` and `eye_right` (image left and right) on the
/// template's eyes. `None` when the eyes coincide.
pub fn face_transform(eye_left: [f32; 2], eye_right: [f32; 2], size: u32) -> Option<Affine> {
    let k = f64::from(size) / 512.0;
    let [t0, t1] = TEMPLATE_EYES_512.map(|[x, y]| [x * k, y * k]);
    let (vx, vy) = (
        f64::from(eye_right[0] - eye_left[0]),
        f64::from(eye_right[1] - eye_left[1]),
    );
    let (wx, wy) = (t1[0] - t0[0], t1[1] - t0[1]);
    let norm = vx * vx + vy * vy;
    if norm < 1e-6 || !norm.is_finite() {
        return None;
    }
    // As complex numbers, z ↦ a·z + b with a = w / v maps the eye vector onto the template's.
    let (ar, ai) = ((wx * vx + wy * vy) / norm, (wy * vx - wx * vy) / norm);
    let (ex, ey) = (f64::from(eye_left[0]), f64::from(eye_left[1]));
    let (bx, by) = (t0[0] - (ar * ex - ai * ey), t0[1] - (ai * ex + ar * ey));
    Some(Affine {
        m: [[ar, -ai, bx], [ai, ar, by]],
    })
}

/// The soft oval in the face square where restoration applies: 255 over the face, fading to
/// 0 at the square's inscribed ellipse. Cached per size (one network size per worker).
pub fn face_mask(size: u32) -> GrayImage {
    static CACHE: OnceLock<std::sync::Mutex<Vec<(u32, GrayImage)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, m)) = cache.iter().find(|(s, _)| *s == size) {
        return m.clone();
    }
    let mask = compose::oval_mask(size, size, FEATHER * size as f32);
    cache.push((size, mask.clone()));
    mask
}

/// The face of `img` (eyes at `eye_left`, `eye_right`) on the network's square, alpha
/// ignored: the network sees the photo as it was, not the cut-out.
pub fn cut_face(img: &RgbaImage, to_face: &Affine, size: u32) -> RgbImage {
    let back = to_face.inverse().unwrap_or_default();
    let mut opaque = img.clone();
    for p in opaque.pixels_mut() {
        p.0[3] = 255;
    }
    let square = align::warp_clamped(&opaque, size, size, &back);
    image::buffer::ConvertBuffer::convert(&square)
}

/// Blends `restored` (the face square) back into `img` under the face mask, with the weight
/// `1 − fidelity`. Alpha and every pixel where the mask is 0 are left as they were.
pub fn paste(
    img: &mut RgbaImage,
    restored: &RgbImage,
    mask: &GrayImage,
    to_face: &Affine,
    fidelity: f32,
) {
    let size = restored.width();
    let strength = (1.0 - fidelity.clamp(0.0, 1.0)) / 255.0;
    if strength <= 0.0 {
        return;
    }
    // Only the square's footprint on the image can change.
    let side = size as f32;
    let reach = to_face.inverse().unwrap_or_default().apply_rect(&Rect {
        x: 0.0,
        y: 0.0,
        width: side,
        height: side,
    });
    let clip = |v: f32, max: u32| v.clamp(0.0, max as f32) as u32;
    let (x0, x1) = (
        clip(reach.x.floor(), img.width()),
        clip(reach.right().ceil(), img.width()),
    );
    let (y0, y1) = (
        clip(reach.y.floor(), img.height()),
        clip(reach.bottom().ceil(), img.height()),
    );
    let last = f64::from(size - 1);
    for y in y0..y1 {
        for x in x0..x1 {
            let [fx, fy] = to_face.apply_f64([f64::from(x) + 0.5, f64::from(y) + 0.5]);
            let (fx, fy) = (fx - 0.5, fy - 0.5);
            if !(fx >= 0.0 && fy >= 0.0 && fx <= last && fy <= last) {
                continue;
            }
            let m = bilinear(fx, fy, size, |i| f32::from(mask.as_raw()[i]));
            if m <= 0.0 {
                continue;
            }
            let w = m * strength;
            let p = img.get_pixel_mut(x, y);
            for c in 0..3 {
                let r = bilinear(fx, fy, size, |i| f32::from(restored.as_raw()[3 * i + c]));
                let o = f32::from(p.0[c]);
                p.0[c] = crate::round_u8(o + w * (r - o));
            }
        }
    }
}

/// Bilinear sample of a `size`² one-value-per-pixel field at pixel-index coordinates inside
/// `[0, size − 1]`.
fn bilinear(x: f64, y: f64, size: u32, at: impl Fn(usize) -> f32) -> f32 {
    let n = size as usize;
    let (ix, iy) = (x.floor() as usize, y.floor() as usize);
    let (ix1, iy1) = ((ix + 1).min(n - 1), (iy + 1).min(n - 1));
    let (tx, ty) = ((x - ix as f64) as f32, (y - iy as f64) as f32);
    let row = |yy: usize| at(yy * n + ix) * (1.0 - tx) + at(yy * n + ix1) * tx;
    row(iy) * (1.0 - ty) + row(iy1) * ty
}

/// Restores the face of `img` whose eyes are at `eye_left` and `eye_right` (image left and
/// right), in place.
pub fn restore(
    img: &mut RgbaImage,
    eye_left: [f32; 2],
    eye_right: [f32; 2],
    restorer: &dyn Restorer,
    params: &RestoreParams,
) -> Result<(), RestoreError> {
    if params.fidelity >= 1.0 {
        // The original is the answer: no need to spend seconds of a GPU on it.
        return Ok(());
    }
    let size = restorer.size();
    let to_face = face_transform(eye_left, eye_right, size).ok_or(RestoreError::Degenerate)?;
    let face = cut_face(img, &to_face, size);
    let restored = restorer.restore(&face)?;
    if restored.dimensions() != (size, size) {
        return Err(RestoreError::WrongSize {
            want: size,
            got_w: restored.width(),
            got_h: restored.height(),
        });
    }
    paste(img, &restored, &face_mask(size), &to_face, params.fidelity);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f32; 2], b: [f64; 2]) -> bool {
        (f64::from(a[0]) - b[0]).abs() < 1e-3 && (f64::from(a[1]) - b[1]).abs() < 1e-3
    }

    #[test]
    fn the_eyes_land_on_the_template() {
        for (l, r) in [
            ([100.0, 120.0], [160.0, 120.0]),
            ([300.0, 410.0], [352.0, 380.0]),
            ([10.0, 10.0], [11.0, 10.5]),
        ] {
            for size in [512, 256] {
                let t = face_transform(l, r, size).unwrap();
                let k = f64::from(size) / 512.0;
                let want = TEMPLATE_EYES_512.map(|[x, y]| [x * k, y * k]);
                assert!(close(t.apply(l), want[0]), "{:?}", t.apply(l));
                assert!(close(t.apply(r), want[1]), "{:?}", t.apply(r));
            }
        }
        assert!(face_transform([5.0, 5.0], [5.0, 5.0], 512).is_none());
    }

    /// A stand-in for the network in pure-function tests: paints the face square one colour.
    struct Paint([u8; 3]);

    impl Restorer for Paint {
        fn name(&self) -> &'static str {
            "paint"
        }
        fn size(&self) -> u32 {
            64
        }
        fn restore(&self, face: &RgbImage) -> Result<RgbImage, EngineError> {
            Ok(RgbImage::from_pixel(
                face.width(),
                face.height(),
                image::Rgb(self.0),
            ))
        }
    }

    fn gradient() -> RgbaImage {
        RgbaImage::from_fn(200, 160, |x, y| {
            image::Rgba([
                (x % 256) as u8,
                (y % 256) as u8,
                90,
                if x < 20 { 0 } else { 255 },
            ])
        })
    }

    #[test]
    fn paste_changes_only_rgb_under_the_mask_and_fidelity_blends() {
        let before = gradient();
        let (l, r) = ([80.0, 70.0], [120.0, 70.0]);
        let to_face = face_transform(l, r, 64).unwrap();
        let mask = face_mask(64);
        let back = to_face.inverse().unwrap();
        let mut full = before.clone();
        restore(
            &mut full,
            l,
            r,
            &Paint([255, 0, 255]),
            &RestoreParams { fidelity: 0.0 },
        )
        .unwrap();
        let mut half = before.clone();
        restore(
            &mut half,
            l,
            r,
            &Paint([255, 0, 255]),
            &RestoreParams { fidelity: 0.5 },
        )
        .unwrap();
        let mut changed = 0;
        for (x, y, p) in full.enumerate_pixels() {
            let o = before.get_pixel(x, y);
            assert_eq!(p.0[3], o.0[3], "alpha kept at {x},{y}");
            let [fx, fy] = to_face.apply_f64([f64::from(x) + 0.5, f64::from(y) + 0.5]);
            let inside = fx >= 0.5 && fy >= 0.5 && fx <= 63.5 && fy <= 63.5;
            let m = if inside {
                bilinear(fx - 0.5, fy - 0.5, 64, |i| f32::from(mask.as_raw()[i]))
            } else {
                0.0
            };
            if m <= 0.0 {
                assert_eq!(p, o, "unchanged outside the mask at {x},{y}");
                assert_eq!(half.get_pixel(x, y), o);
            } else if m >= 254.5 {
                changed += 1;
                assert_eq!(p.0[..3], [255, 0, 255], "restored at {x},{y}");
                // Half fidelity: halfway between, within rounding.
                for c in 0..3 {
                    let want = (f32::from(o.0[c]) + f32::from(p.0[c])) / 2.0;
                    assert!((f32::from(half.get_pixel(x, y).0[c]) - want).abs() <= 1.0);
                }
            }
        }
        assert!(changed > 400, "{changed} pixels fully restored");
        // The square's centre is inside the image and was restored.
        let [cx, cy] = back.apply_f64([32.0, 32.0]);
        assert_eq!(full.get_pixel(cx as u32, cy as u32).0[..3], [255, 0, 255]);
    }

    #[test]
    fn fidelity_one_is_the_original_and_asks_no_network() {
        struct Refuse;
        impl Restorer for Refuse {
            fn name(&self) -> &'static str {
                "refuse"
            }
            fn size(&self) -> u32 {
                64
            }
            fn restore(&self, _: &RgbImage) -> Result<RgbImage, EngineError> {
                Err(EngineError::Inference("must not be called".into()))
            }
        }
        let before = gradient();
        let mut img = before.clone();
        restore(
            &mut img,
            [80.0, 70.0],
            [120.0, 70.0],
            &Refuse,
            &RestoreParams { fidelity: 1.0 },
        )
        .unwrap();
        assert_eq!(img, before);
        let e = restore(
            &mut img,
            [80.0, 70.0],
            [120.0, 70.0],
            &Refuse,
            &RestoreParams { fidelity: 0.3 },
        )
        .unwrap_err();
        assert_eq!(e.code(), facecraft_contract::ErrorCode::Internal);
    }

    #[test]
    fn a_network_answering_the_wrong_size_is_an_error() {
        struct Small;
        impl Restorer for Small {
            fn name(&self) -> &'static str {
                "small"
            }
            fn size(&self) -> u32 {
                64
            }
            fn restore(&self, _: &RgbImage) -> Result<RgbImage, EngineError> {
                Ok(RgbImage::new(32, 32))
            }
        }
        let mut img = gradient();
        let e = restore(
            &mut img,
            [80.0, 70.0],
            [120.0, 70.0],
            &Small,
            &RestoreParams { fidelity: 0.0 },
        )
        .unwrap_err();
        assert!(matches!(e, RestoreError::WrongSize { want: 64, .. }), "{e}");
    }

    #[test]
    fn the_cut_face_puts_the_eyes_on_the_template() {
        // A dark dot at each eye: on the square they must sit on the template's eyes.
        let mut img = RgbaImage::from_pixel(300, 300, image::Rgba([200, 200, 200, 0]));
        let (l, r) = ([120.0f32, 140.0], [180.0f32, 150.0]);
        for [ex, ey] in [l, r] {
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (x, y) = ((ex as i32 + dx) as u32, (ey as i32 + dy) as u32);
                    img.put_pixel(x, y, image::Rgba([0, 0, 0, 0]));
                }
            }
        }
        let t = face_transform(l, r, 512).unwrap();
        let sq = cut_face(&img, &t, 512);
        for [tx, ty] in TEMPLATE_EYES_512 {
            let p = sq.get_pixel(tx as u32, ty as u32);
            assert!(p.0[0] < 100, "dark at the template eye ({tx},{ty}): {p:?}");
        }
        // Alpha 0 in the input does not blank the network's view.
        assert_eq!(sq.get_pixel(10, 10).0, [200, 200, 200]);
    }
}
