//! Align stage: rotate the photo about the eye midpoint so the eye line is level.
//!
//! The canvas grows to hold the whole rotated photo (the new corners are transparent), and the
//! [`Affine`] that was applied comes back with the image, so boxes and landmarks found before
//! alignment can be carried into the aligned image instead of detecting again.
//!
//! Conventions used throughout: image coordinates, x to the right, y *down*, and continuous
//! pixel coordinates in which pixel `(i, j)` covers `[i, i + 1) × [j, j + 1)` (its centre is at
//! `(i + 0.5, j + 0.5)`), the same convention as [`Rect`] (a rect at `x = 0` of width `w`
//! covers the first `w` columns). An angle is positive when it turns **clockwise on screen**
//! (from +x towards +y).

use image::{GrayImage, RgbaImage};

use super::face::{FaceLandmarks, Rect};

/// Roll angle of the eye line, in degrees, in `(-180, 180]`: the direction of the vector from
/// `eye_left` to `eye_right`, measured clockwise on screen from the +x axis.
///
/// Positive means the right-hand eye (in the image) is *lower* than the left-hand one: the
/// face is tilted clockwise as seen on screen. A level, upright face gives 0; eyes given in the
/// wrong order give about ±180. Coincident eyes give 0; non-finite input gives NaN.
pub fn eye_angle(eye_left: [f32; 2], eye_right: [f32; 2]) -> f32 {
    let dx = f64::from(eye_right[0]) - f64::from(eye_left[0]);
    let dy = f64::from(eye_right[1]) - f64::from(eye_left[1]);
    // f64 → f32 of an angle within ±180: the precision lost is far below what matters.
    dy.atan2(dx).to_degrees() as f32
}

/// Alignment settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlignParams {
    /// Largest roll, in degrees, that is corrected. Beyond it the landmarks are not trusted
    /// (a frontal 5-point model on a sideways or upside-down face, or eyes swapped) and the
    /// image is left as it is. Default: 45. Frontal detectors (dlib HOG, MMOD) rarely fire
    /// past about ±30° of roll, so 45 keeps every real detection while refusing nonsense.
    pub max_rotation_deg: f32,
    /// Smallest roll, in degrees, worth resampling for. Below it the image is returned
    /// untouched: resampling blurs slightly, and 0.2° is under a pixel of drift across a
    /// 250-px-wide face (250 · tan 0.2° ≈ 0.9 px), which no one can see. Default: 0.2.
    pub min_rotation_deg: f32,
}

impl Default for AlignParams {
    fn default() -> Self {
        Self {
            max_rotation_deg: 45.0,
            min_rotation_deg: 0.2,
        }
    }
}

/// A 2×3 affine transform of image points: `p' = [m00 m01; m10 m11] · p + [m02; m12]`, in the
/// continuous pixel coordinates described in the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Rows of the matrix: `m[0] = [m00, m01, m02]`, `m[1] = [m10, m11, m12]`.
    pub m: [[f64; 3]; 2],
}

impl Default for Affine {
    fn default() -> Self {
        Self::IDENTITY
    }
}

impl Affine {
    /// The transform that changes nothing.
    pub const IDENTITY: Self = Self {
        m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
    };

    /// `p ↦ s·p + (dx, dy)`.
    pub fn scale_then_translate(s: f64, dx: f64, dy: f64) -> Self {
        Self {
            m: [[s, 0.0, dx], [0.0, s, dy]],
        }
    }

    /// Moves every point by `(dx, dy)`.
    pub fn translation(dx: f64, dy: f64) -> Self {
        Self {
            m: [[1.0, 0.0, dx], [0.0, 1.0, dy]],
        }
    }

    /// Rotates by `deg` degrees clockwise on screen about `center`.
    pub fn rotation_about(center: [f64; 2], deg: f64) -> Self {
        let (sin, cos) = deg.to_radians().sin_cos();
        let [cx, cy] = center;
        // p' = R (p − c) + c, with R = [cos −sin; sin cos], which turns +x towards +y
        // (clockwise on screen, y pointing down).
        Self {
            m: [
                [cos, -sin, cx - cos * cx + sin * cy],
                [sin, cos, cy - sin * cx - cos * cy],
            ],
        }
    }

    /// `self` followed by `next`: `self.then(&next).apply(p) == next.apply(self.apply(p))`.
    pub fn then(&self, next: &Self) -> Self {
        let [a, b] = next.m;
        let [c, d] = self.m;
        Self {
            m: [
                [
                    a[0] * c[0] + a[1] * d[0],
                    a[0] * c[1] + a[1] * d[1],
                    a[0] * c[2] + a[1] * d[2] + a[2],
                ],
                [
                    b[0] * c[0] + b[1] * d[0],
                    b[0] * c[1] + b[1] * d[1],
                    b[0] * c[2] + b[1] * d[2] + b[2],
                ],
            ],
        }
    }

    /// The transform that undoes this one; `None` when it collapses the plane (determinant
    /// zero or not finite).
    pub fn inverse(&self) -> Option<Self> {
        let [[a, b, tx], [c, d, ty]] = self.m;
        let det = a * d - b * c;
        if det == 0.0 || !det.is_finite() {
            return None;
        }
        let (ia, ib, ic, id) = (d / det, -b / det, -c / det, a / det);
        Some(Self {
            m: [
                [ia, ib, -(ia * tx + ib * ty)],
                [ic, id, -(ic * tx + id * ty)],
            ],
        })
    }

    /// Maps one point.
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let [x, y] = self.apply_f64([f64::from(p[0]), f64::from(p[1])]);
        // Image coordinates fit f32 with room to spare.
        [x as f32, y as f32]
    }

    /// The axis-aligned bounding box of the four mapped corners of `r`. Under a rotation the
    /// box grows (a rotated square's bounding box is up to √2 wider); that is the price of
    /// keeping [`Rect`] axis-aligned.
    pub fn apply_rect(&self, r: &Rect) -> Rect {
        let corners = [
            [r.x, r.y],
            [r.right(), r.y],
            [r.x, r.bottom()],
            [r.right(), r.bottom()],
        ]
        .map(|p| self.apply(p));
        let (mut x0, mut y0) = (f32::INFINITY, f32::INFINITY);
        let (mut x1, mut y1) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        for [x, y] in corners {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
        Rect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        }
    }

    /// Maps every landmark point.
    pub fn apply_landmarks(&self, lm: &FaceLandmarks) -> FaceLandmarks {
        FaceLandmarks {
            eye_left: self.apply(lm.eye_left),
            eye_right: self.apply(lm.eye_right),
            nose: self.apply(lm.nose),
            points: lm.points.iter().map(|&p| self.apply(p)).collect(),
        }
    }

    /// Maps one point, in f64.
    pub fn apply_f64(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        let [r0, r1] = self.m;
        [r0[0] * x + r0[1] * y + r0[2], r1[0] * x + r1[1] * y + r1[2]]
    }
}

/// The result of [`align`].
#[derive(Debug, Clone)]
pub struct Aligned {
    /// The rotated photo on a canvas just large enough to hold all of it; pixels outside the
    /// photo are `[0, 0, 0, 0]`. The input itself when nothing was rotated.
    pub image: RgbaImage,
    /// The rotation applied, in degrees, clockwise on screen positive: `-roll_deg` when the
    /// roll was corrected, 0 when it was not.
    pub rotation_deg: f32,
    /// The roll measured from the landmarks ([`eye_angle`]), corrected or not; for logs, and
    /// to tell "level already" from "too much roll to trust" when `rotation_deg` is 0.
    pub roll_deg: f32,
    /// Input pixel coordinates → `image` pixel coordinates (rotation about the eye midpoint,
    /// then the shift into the grown canvas). [`Affine::IDENTITY`] when nothing was rotated.
    pub transform: Affine,
}

/// Rotates `img` about the eye midpoint so that the line from `lm.eye_left` to `lm.eye_right`
/// becomes horizontal, growing the canvas so that no part of the photo is cut off.
///
/// The roll is left uncorrected (the input comes back unchanged, with an identity transform)
/// when it is under `min_rotation_deg`, over `max_rotation_deg`, or not a number.
///
/// Sampling is bilinear on premultiplied alpha, so transparent pixels (colour arbitrary)
/// never bleed into the photo, and the photo's edges come out anti-aliased against the
/// transparent corners. Bilinear is enough here: a rotation neither shrinks nor enlarges,
/// so there is no aliasing to filter, and unlike bicubic it cannot overshoot; its slight
/// softening (at most a quarter-pixel blur, at half-pixel offsets) is below what the later
/// letterbox resize and optional sharpening change.
pub fn align(img: &RgbaImage, lm: &FaceLandmarks, params: &AlignParams) -> Aligned {
    let roll = eye_angle(lm.eye_left, lm.eye_right);
    let unrotated = || Aligned {
        image: img.clone(),
        rotation_deg: 0.0,
        roll_deg: roll,
        transform: Affine::IDENTITY,
    };
    let magnitude = roll.abs();
    let in_range = magnitude >= params.min_rotation_deg && magnitude <= params.max_rotation_deg;
    if !in_range || img.width() == 0 || img.height() == 0 {
        // `in_range` is false for NaN too.
        return unrotated();
    }

    let rotation = -f64::from(roll);
    let center = [
        (f64::from(lm.eye_left[0]) + f64::from(lm.eye_right[0])) / 2.0,
        (f64::from(lm.eye_left[1]) + f64::from(lm.eye_right[1])) / 2.0,
    ];
    let rotate = Affine::rotation_about(center, rotation);

    // The photo's outline after rotation, and the canvas that holds it, centred.
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let corners = [[0.0, 0.0], [w, 0.0], [0.0, h], [w, h]].map(|p| rotate.apply_f64(p));
    let min = |i: usize| corners.iter().map(|p| p[i]).fold(f64::INFINITY, f64::min);
    let max = |i: usize| {
        corners
            .iter()
            .map(|p| p[i])
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let (x0, x1, y0, y1) = (min(0), max(0), min(1), max(1));
    // The small epsilon keeps float noise (an extent of 200.000001) from adding a column.
    let side = |extent: f64| (extent - 1e-6).ceil().max(1.0);
    let (out_w, out_h) = (side(x1 - x0), side(y1 - y0));
    let transform = rotate.then(&Affine::translation(
        (out_w - (x0 + x1)) / 2.0,
        (out_h - (y0 + y1)) / 2.0,
    ));
    let Some(inverse) = transform.inverse() else {
        return unrotated();
    };

    // The canvas is (|w cos| + |h sin|) × (|w sin| + |h cos|), at most (w + h)² / 2 at 45°:
    // 2× the photo's pixels for a square, 2.25× for 2:1, but 7× for a 12:1 strip, which the
    // decode limits (40 MP, 12 000 px a side) still admit.
    Aligned {
        image: warp(img, out_w as u32, out_h as u32, &inverse),
        rotation_deg: rotation as f32,
        roll_deg: roll,
        transform,
    }
}

/// A `width × height` image whose pixel centres `back` maps into `img`, sampled bilinearly on
/// premultiplied alpha; pixels that fall outside `img` are transparent. The one resampler of
/// the pipeline: alignment and the rotated copies that detection retries on both use it.
pub fn warp(img: &RgbaImage, width: u32, height: u32, back: &Affine) -> RgbaImage {
    warp_with(img, width, height, back, false)
}

/// [`warp`], but a point beyond the photo takes the colour of the nearest edge pixel instead
/// of transparency: for a model input, where a sharp photo border against a flat fill would
/// itself look like a salient object.
pub fn warp_clamped(img: &RgbaImage, width: u32, height: u32, back: &Affine) -> RgbaImage {
    warp_with(img, width, height, back, true)
}

fn warp_with(img: &RgbaImage, width: u32, height: u32, back: &Affine, clamp: bool) -> RgbaImage {
    let mut image = RgbaImage::new(width, height);
    let source = Source {
        pixels: img.as_raw(),
        width: img.width() as usize,
        height: img.height() as usize,
    };
    let row_len = image.width() as usize * 4;
    let [[step_x, _, _], [step_y, _, _]] = back.m;
    for (y, row) in image.chunks_exact_mut(row_len.max(1)).enumerate() {
        // Walk the row in source space: each output pixel is one (step_x, step_y) further.
        let [x0, y0] = back.apply_f64([0.5, y as f64 + 0.5]);
        for (x, out) in row.chunks_exact_mut(4).enumerate() {
            let (mut sx, mut sy) = (x0 + x as f64 * step_x - 0.5, y0 + x as f64 * step_y - 0.5);
            if clamp {
                sx = sx.clamp(0.0, (source.width.max(1) - 1) as f64);
                sy = sy.clamp(0.0, (source.height.max(1) - 1) as f64);
            }
            out.copy_from_slice(&source.sample_bilinear(sx, sy));
        }
    }
    image
}

/// [`warp`] for a one-channel image (a matte): bilinear, 0 outside `img`.
pub fn warp_gray(img: &GrayImage, width: u32, height: u32, back: &Affine) -> GrayImage {
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let px = img.as_raw();
    let [[step_x, _, _], [step_y, _, _]] = back.m;
    let mut out = GrayImage::new(width, height);
    for (y, row) in out.chunks_exact_mut((width as usize).max(1)).enumerate() {
        let [x0, y0] = back.apply_f64([0.5, y as f64 + 0.5]);
        for (x, o) in row.iter_mut().enumerate() {
            let (sx, sy) = (x0 + x as f64 * step_x - 0.5, y0 + x as f64 * step_y - 0.5);
            let (fx, fy) = (sx.floor(), sy.floor());
            if !(fx >= -1.0 && fy >= -1.0 && fx < sw as f64 && fy < sh as f64) {
                continue;
            }
            let (tx, ty) = (sx - fx, sy - fy);
            let (ix, iy) = (fx as isize, fy as isize);
            let at = |dx: isize, dy: isize| -> f64 {
                let (x, y) = (ix + dx, iy + dy);
                if x < 0 || y < 0 || x as usize >= sw || y as usize >= sh {
                    0.0
                } else {
                    f64::from(px[y as usize * sw + x as usize])
                }
            };
            let v = (at(0, 0) * (1.0 - tx) + at(1, 0) * tx) * (1.0 - ty)
                + (at(0, 1) * (1.0 - tx) + at(1, 1) * tx) * ty;
            *o = crate::round_u8(v as f32);
        }
    }
    out
}

/// The photo being rotated, as raw RGBA8 rows.
struct Source<'a> {
    pixels: &'a [u8],
    width: usize,
    height: usize,
}

impl Source<'_> {
    /// Bilinear sample at `(x, y)` in pixel-index coordinates (pixel centres on integers),
    /// with everything outside the image transparent. Interpolates premultiplied colour and
    /// returns straight alpha.
    fn sample_bilinear(&self, x: f64, y: f64) -> [u8; 4] {
        const CLEAR: [u8; 4] = [0, 0, 0, 0];
        let (fx, fy) = (x.floor(), y.floor());
        // Entirely outside (NaN fails the comparisons too): transparent.
        let inside = fx >= -1.0 && fy >= -1.0 && fx < self.width as f64 && fy < self.height as f64;
        if !inside {
            return CLEAR;
        }
        let (tx, ty) = ((x - fx) as f32, (y - fy) as f32);
        // −1 ≤ fx < width after the check above; the neighbour at −1 is skipped below.
        let (ix, iy) = (fx as isize, fy as isize);
        if ix >= 0 && iy >= 0 && (ix as usize) + 1 < self.width && (iy as usize) + 1 < self.height {
            // All four taps inside (nearly every pixel): no per-tap checks. An opaque
            // neighbourhood needs no premultiplication either.
            let (ix, iy) = (ix as usize, iy as usize);
            let i00 = 4 * (iy * self.width + ix);
            let i10 = i00 + 4;
            let i01 = i00 + 4 * self.width;
            let i11 = i01 + 4;
            let p = self.pixels;
            let weights = [
                (i00, (1.0 - tx) * (1.0 - ty)),
                (i10, tx * (1.0 - ty)),
                (i01, (1.0 - tx) * ty),
                (i11, tx * ty),
            ];
            if p[i00 + 3] == 255 && p[i10 + 3] == 255 && p[i01 + 3] == 255 && p[i11 + 3] == 255 {
                let mut out = [255u8; 4];
                for (c, o) in out.iter_mut().take(3).enumerate() {
                    let v: f32 = weights.iter().map(|&(i, w)| w * f32::from(p[i + c])).sum();
                    *o = to_u8(v);
                }
                return out;
            }
        }
        let mut acc = [0.0f32; 4];
        for (dy, wy) in [(0, 1.0 - ty), (1, ty)] {
            let Ok(py) = usize::try_from(iy + dy) else {
                continue;
            };
            if py >= self.height || wy == 0.0 {
                continue;
            }
            for (dx, wx) in [(0, 1.0 - tx), (1, tx)] {
                let Ok(px) = usize::try_from(ix + dx) else {
                    continue;
                };
                if px >= self.width || wx == 0.0 {
                    continue;
                }
                let i = 4 * (py * self.width + px);
                let [r, g, b, a] = [0, 1, 2, 3].map(|c| f32::from(self.pixels[i + c]));
                let wa = wx * wy * a;
                acc[0] += wa * r;
                acc[1] += wa * g;
                acc[2] += wa * b;
                acc[3] += wa;
            }
        }
        let alpha = acc[3];
        if alpha < 0.5 {
            // Rounds to alpha 0: give the canonical transparent pixel.
            return CLEAR;
        }
        let un = |c: f32| to_u8(c / alpha);
        [un(acc[0]), un(acc[1]), un(acc[2]), to_u8(alpha)]
    }
}

/// `0.0..=255.0` → `u8`, rounded half up; out-of-range values are clamped first.
fn to_u8(v: f32) -> u8 {
    crate::round_u8(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    fn landmarks(eye_left: [f32; 2], eye_right: [f32; 2]) -> FaceLandmarks {
        let nose = [
            (eye_left[0] + eye_right[0]) / 2.0,
            (eye_left[1] + eye_right[1]) / 2.0 + 30.0,
        ];
        FaceLandmarks {
            eye_left,
            eye_right,
            nose,
            points: vec![eye_left, eye_right, nose],
        }
    }

    /// An opaque dark image with a red Gaussian dot at `red` and a green one at `green`
    /// (continuous coordinates, so the dots' centroids are exactly those points).
    fn two_dots(w: u32, h: u32, red: [f32; 2], green: [f32; 2]) -> RgbaImage {
        let blob = |c: [f32; 2], x: u32, y: u32| {
            let dx = x as f32 + 0.5 - c[0];
            let dy = y as f32 + 0.5 - c[1];
            let v = 255.0 * (-(dx * dx + dy * dy) / (2.0 * 2.5 * 2.5)).exp();
            to_u8(v)
        };
        RgbaImage::from_fn(w, h, |x, y| {
            Rgba([blob(red, x, y), blob(green, x, y), 0, 255])
        })
    }

    /// Intensity-weighted centroid of one channel, in continuous coordinates.
    fn centroid(img: &RgbaImage, channel: usize) -> [f32; 2] {
        let (mut sx, mut sy, mut sw) = (0.0f64, 0.0f64, 0.0f64);
        for (x, y, p) in img.enumerate_pixels() {
            // Weight by premultiplied value, ignoring the faint background texture.
            let v = f64::from(p.0[channel]) * f64::from(p.0[3]) / 255.0;
            if v > 8.0 {
                sx += v * (f64::from(x) + 0.5);
                sy += v * (f64::from(y) + 0.5);
                sw += v;
            }
        }
        assert!(sw > 0.0, "channel {channel} is empty");
        [(sx / sw) as f32, (sy / sw) as f32]
    }

    fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
    }

    fn dots_at(center: [f32; 2], half: f32, deg: f32) -> ([f32; 2], [f32; 2]) {
        let (s, c) = deg.to_radians().sin_cos();
        (
            [center[0] - half * c, center[1] - half * s],
            [center[0] + half * c, center[1] + half * s],
        )
    }

    #[test]
    fn eye_angle_is_clockwise_on_screen() {
        assert_eq!(eye_angle([10.0, 20.0], [50.0, 20.0]), 0.0);
        // Right-hand eye lower (larger y): positive.
        assert!((eye_angle([0.0, 0.0], [10.0, 10.0]) - 45.0).abs() < 1e-5);
        assert!((eye_angle([0.0, 10.0], [10.0, 0.0]) + 45.0).abs() < 1e-5);
        assert!((eye_angle([0.0, 0.0], [10.0, 10.0 * 3f32.sqrt()]) - 60.0).abs() < 1e-4);
        // Eyes swapped: the line points left.
        assert!((eye_angle([50.0, 20.0], [10.0, 20.0]) - 180.0).abs() < 1e-5);
        assert_eq!(eye_angle([5.0, 5.0], [5.0, 5.0]), 0.0);
        assert!(eye_angle([f32::NAN, 0.0], [1.0, 0.0]).is_nan());
    }

    #[test]
    fn rotated_dots_become_level_and_land_where_the_transform_says() {
        for deg in [17.0f32, -23.0, 3.5, -40.0, 0.5] {
            let (red, green) = dots_at([170.0, 110.0], 60.0, deg);
            let img = two_dots(300, 220, red, green);
            // The drawn dots are where we meant them to be.
            assert!(dist(centroid(&img, 0), red) < 0.05, "{deg}");

            let out = align(&img, &landmarks(red, green), &AlignParams::default());
            assert!((out.roll_deg - deg).abs() < 1e-3, "{deg}: {}", out.roll_deg);
            assert!((out.rotation_deg + deg).abs() < 1e-3, "{deg}");

            let (r, g) = (centroid(&out.image, 0), centroid(&out.image, 1));
            let level = eye_angle(r, g);
            assert!(
                level.abs() < 0.1,
                "{deg}: eye line at {level}° after alignment"
            );
            // The dots keep their distance (a rotation, not a scale).
            assert!((dist(r, g) - 120.0).abs() < 0.2, "{deg}: {}", dist(r, g));
            // The transform predicts where they went.
            let (tr, tg) = (out.transform.apply(red), out.transform.apply(green));
            assert!(dist(tr, r) < 1.0, "{deg}: red {tr:?} vs {r:?}");
            assert!(dist(tg, g) < 1.0, "{deg}: green {tg:?} vs {g:?}");
            // ...to well under a pixel, in fact.
            assert!(dist(tr, r) < 0.1 && dist(tg, g) < 0.1, "{deg}");
            // And the mapped landmarks are level too.
            let mapped = out.transform.apply_landmarks(&landmarks(red, green));
            assert!(eye_angle(mapped.eye_left, mapped.eye_right).abs() < 1e-3);
        }
    }

    #[test]
    fn canvas_grows_to_hold_the_whole_photo() {
        let (w, h) = (200u32, 100u32);
        let img = RgbaImage::from_fn(w, h, |x, y| {
            Rgba([(x % 256) as u8, (y * 2) as u8, 128, 255])
        });
        // 30° of roll, corrected by rotating −30°.
        let (l, r) = dots_at([90.0, 40.0], 30.0, 30.0);
        let out = align(&img, &landmarks(l, r), &AlignParams::default());
        let (s, c) = 30f64.to_radians().sin_cos();
        let want_w = (200.0 * c + 100.0 * s).ceil() as u32;
        let want_h = (200.0 * s + 100.0 * c).ceil() as u32;
        assert_eq!(out.image.dimensions(), (want_w, want_h));

        // No coverage is lost: total alpha equals the photo's area (to anti-aliasing).
        let coverage: f64 = out.image.pixels().map(|p| f64::from(p.0[3]) / 255.0).sum();
        let area = f64::from(w * h);
        assert!(
            (coverage - area).abs() / area < 0.005,
            "{coverage} vs {area}"
        );

        // The new corners are transparent, and the photo's own corners are inside the
        // canvas.
        let (ow, oh) = out.image.dimensions();
        for (x, y) in [(0, 0), (ow - 1, 0), (0, oh - 1), (ow - 1, oh - 1)] {
            assert_eq!(out.image.get_pixel(x, y).0, [0, 0, 0, 0], "({x},{y})");
        }
        let bounds = out.transform.apply_rect(&Rect {
            x: 0.0,
            y: 0.0,
            width: w as f32,
            height: h as f32,
        });
        assert!(bounds.x >= -1e-3 && bounds.y >= -1e-3, "{bounds:?}");
        assert!(bounds.right() <= ow as f32 + 1e-3 && bounds.bottom() <= oh as f32 + 1e-3);

        // An interior pixel keeps its colour at its mapped place (the pattern is linear
        // there, so bilinear interpolation reproduces it almost exactly).
        let p = out.transform.apply([120.5, 50.5]);
        let q = out.image.get_pixel(p[0] as u32, p[1] as u32).0;
        assert!(
            q[0].abs_diff(120) <= 1 && q[1].abs_diff(100) <= 1 && q[2] == 128,
            "{q:?}"
        );
        assert_eq!(q[3], 255);
    }

    #[test]
    fn transparent_pixels_do_not_bleed_into_the_photo() {
        // Left half opaque white, right half transparent black: interpolating straight
        // alpha would darken the edge.
        let img = RgbaImage::from_fn(120, 80, |x, _| {
            if x < 60 {
                Rgba([255, 255, 255, 255])
            } else {
                Rgba([0, 0, 0, 0])
            }
        });
        let (l, r) = dots_at([60.0, 40.0], 20.0, -12.0);
        let out = align(&img, &landmarks(l, r), &AlignParams::default());
        assert!(out.image.pixels().filter(|p| p.0[3] > 0).count() > 3000);
        for p in out.image.pixels().filter(|p| p.0[3] > 0) {
            assert_eq!(p.0[..3], [255, 255, 255], "fringe pixel {p:?}");
        }
    }

    #[test]
    fn transform_round_trips() {
        let (l, r) = dots_at([130.0, 90.0], 40.0, 21.0);
        let img = RgbaImage::from_pixel(260, 180, Rgba([9, 9, 9, 255]));
        let out = align(&img, &landmarks(l, r), &AlignParams::default());
        let inverse = out.transform.inverse().expect("a rotation is invertible");
        for p in [[0.0, 0.0], [259.5, 179.5], [130.0, 90.0], [-50.0, 400.0]] {
            let back = inverse.apply(out.transform.apply(p));
            assert!(dist(back, p) < 1e-3, "{p:?} → {back:?}");
        }
        let both = out.transform.then(&inverse);
        for (row, want) in both.m.iter().zip(Affine::IDENTITY.m) {
            for (v, w) in row.iter().zip(want) {
                assert!((v - w).abs() < 1e-9, "{both:?}");
            }
        }
        // The linear part is the pure rotation that was reported.
        let (sin, cos) = f64::from(out.rotation_deg).to_radians().sin_cos();
        let [r0, r1] = out.transform.m;
        for (got, want) in [r0[0], r0[1], r1[0], r1[1]]
            .iter()
            .zip([cos, -sin, sin, cos])
        {
            assert!((got - want).abs() < 1e-6, "{:?}", out.transform);
        }
    }

    #[test]
    fn apply_rect_bounds_the_rotated_corners() {
        let t = Affine::rotation_about([0.0, 0.0], 90.0);
        // (x, y) → (−y, x): a 10×4 box at (1, 2) lands on x ∈ [−6, −2], y ∈ [1, 11].
        let r = t.apply_rect(&Rect {
            x: 1.0,
            y: 2.0,
            width: 10.0,
            height: 4.0,
        });
        let want = [-6.0, 1.0, 4.0, 10.0];
        for (got, want) in [r.x, r.y, r.width, r.height].iter().zip(want) {
            assert!((got - want).abs() < 1e-4, "{r:?}");
        }
        let shifted = Affine::translation(3.0, -1.0).apply_rect(&Rect {
            x: 1.0,
            y: 2.0,
            width: 10.0,
            height: 4.0,
        });
        assert_eq!(
            shifted,
            Rect {
                x: 4.0,
                y: 1.0,
                width: 10.0,
                height: 4.0
            }
        );
    }

    #[test]
    fn level_eyes_give_the_identical_image() {
        let img = RgbaImage::from_fn(64, 48, |x, y| Rgba([x as u8, y as u8, 7, 200]));
        for (l, r) in [
            ([20.0, 20.0], [44.0, 20.0]),
            // 0.1°: under the default 0.2° threshold.
            dots_at([32.0, 20.0], 12.0, 0.1),
            dots_at([32.0, 20.0], 12.0, -0.15),
        ] {
            let out = align(&img, &landmarks(l, r), &AlignParams::default());
            assert_eq!(out.image, img);
            assert_eq!(out.rotation_deg, 0.0);
            assert_eq!(out.transform, Affine::IDENTITY);
        }
    }

    #[test]
    fn too_much_roll_is_not_trusted() {
        let img = RgbaImage::from_pixel(40, 40, Rgba([1, 2, 3, 255]));
        for deg in [50.0f32, -46.0, 180.0, 120.0] {
            let (l, r) = dots_at([20.0, 20.0], 10.0, deg);
            let out = align(&img, &landmarks(l, r), &AlignParams::default());
            assert_eq!(out.image, img, "{deg}");
            assert_eq!(out.rotation_deg, 0.0);
            assert!((out.roll_deg - deg).abs() < 1e-3, "{deg}: {}", out.roll_deg);
            assert_eq!(out.transform, Affine::IDENTITY);
        }
        let nan = landmarks([f32::NAN, 1.0], [3.0, 4.0]);
        let out = align(&img, &nan, &AlignParams::default());
        assert_eq!(out.image, img);
        assert!(out.roll_deg.is_nan());
    }

    #[test]
    fn ninety_degree_rotation_is_lossless_when_allowed() {
        // With the limit raised, a quarter turn lands every pixel centre on a pixel centre,
        // so bilinear sampling copies pixels exactly.
        let img = RgbaImage::from_fn(6, 4, |x, y| Rgba([(10 * x + y) as u8, 0, 0, 255]));
        let params = AlignParams {
            max_rotation_deg: 180.0,
            ..AlignParams::default()
        };
        // Right-hand eye straight below the left one: roll 90°, corrected by −90°.
        let out = align(&img, &landmarks([3.0, 1.0], [3.0, 3.0]), &params);
        assert_eq!(out.image.dimensions(), (4, 6));
        for (x, y, p) in img.enumerate_pixels() {
            let [u, v] = out.transform.apply([x as f32 + 0.5, y as f32 + 0.5]);
            let q = out.image.get_pixel(u as u32, v as u32);
            assert_eq!(q, p, "({x},{y}) → ({u},{v})");
        }
    }
}
