//! Compose stage: place the portrait onto the output canvas.
//!
//! Its input is whatever the face stages leave (the head-and-shoulders crop, with the
//! segmentation matte in the alpha channel once `segment` exists; until then, the whole
//! decoded image, opaque). It letterboxes that into `width × height` over the background
//! colour or transparency and, when the oval option is on, fades the frame out to the
//! background through a feathered ellipse ([`oval_mask`] + [`apply_mask`]).
//!
//! All blending happens on premultiplied alpha, so transparent pixels (whose colour is
//! arbitrary, usually black) never bleed into their neighbours as dark fringes when resized.

use crate::resize::Filter;
use facecraft_contract::ErrorCode;
use image::{GrayImage, RgbImage, Rgba, RgbaImage};

/// Largest accepted output side, in pixels. Portraits for directories and badges are far
/// smaller; the cap keeps one job's canvas under 64 MiB (4096² × 4 bytes).
pub const MAX_OUTPUT_SIDE: u32 = 4096;

/// Resampling filter for the letterbox resize. Catmull-Rom (bicubic, a = −0.5, as Pillow's
/// `BICUBIC`) is about as sharp as Lanczos3 with less ringing. Measured on a hard 60 → 190
/// step resized to 648 px: Catmull-Rom overshoots by at most 2 levels when shrinking and 9
/// (7 % of the step) when enlarging; Lanczos3 by 4 and 15 (12 %). Triangle does not
/// overshoot but visibly softens downscaled photos. Whatever overshoot remains is clamped.
const RESIZE_FILTER: Filter = Filter::CatmullRom;

/// What fills the canvas around and behind the portrait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// An opaque colour, as `[r, g, b]` in the order the client gave it.
    Color([u8; 3]),
    /// Transparency: the output keeps an alpha channel (PNG only; JPEG needs
    /// [`flatten`] onto some colour).
    Transparent,
}

impl Default for Background {
    /// Light grey (240, 240, 240), the reference service's default.
    fn default() -> Self {
        Self::Color([240, 240, 240])
    }
}

/// Output canvas settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComposeParams {
    /// Canvas width in pixels. Default: 648 (the reference service's default).
    pub width: u32,
    /// Canvas height in pixels. Default: 648.
    pub height: u32,
    /// Background. Default: `Color([240, 240, 240])`.
    pub background: Background,
}

impl Default for ComposeParams {
    fn default() -> Self {
        Self {
            width: 648,
            height: 648,
            background: Background::default(),
        }
    }
}

impl ComposeParams {
    /// Rejects canvas sizes outside `1..=MAX_OUTPUT_SIDE`; call when a job's parameters are
    /// accepted, so a bad request fails before any work is done.
    pub fn validate(&self) -> Result<(), ComposeError> {
        let ok = |side: u32| (1..=MAX_OUTPUT_SIDE).contains(&side);
        if ok(self.width) && ok(self.height) {
            Ok(())
        } else {
            Err(ComposeError::InvalidSize {
                width: self.width,
                height: self.height,
            })
        }
    }
}

/// Errors of the compose stage.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The requested canvas is empty or larger than [`MAX_OUTPUT_SIDE`].
    #[error("output size {width}×{height} is invalid; each side must be 1 to {max} pixels", max = MAX_OUTPUT_SIDE)]
    InvalidSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// A mask does not match the image it is applied to: a bug in the caller, not in the
    /// request.
    #[error("mask is {mask_width}×{mask_height} but the image is {width}×{height}")]
    MaskSizeMismatch {
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
        /// Mask width.
        mask_width: u32,
        /// Mask height.
        mask_height: u32,
    },
}

impl ComposeError {
    /// Stable snake_case code for HTTP bodies and failed-job records (names from
    /// `facecraft_contract::error::ErrorCode`).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidSize { .. } => ErrorCode::InvalidParams,
            Self::MaskSizeMismatch { .. } => ErrorCode::Internal,
        }
    }
}

/// Scales `img` to fit inside `params.width × params.height` keeping its aspect ratio,
/// centres it, and fills the rest with the background.
///
/// With a colour background the result is opaque: the input's alpha is composited over the
/// colour. With [`Background::Transparent`] the input's alpha is kept and the border is fully
/// transparent. An odd leftover is split with the extra pixel on the right / bottom. An empty
/// input or canvas yields just the (possibly empty) background canvas.
pub fn letterbox(img: &RgbaImage, params: &ComposeParams) -> RgbaImage {
    let (width, height) = (params.width, params.height);
    let mut canvas = RgbaImage::from_pixel(width, height, canvas_pixel(params.background));
    if img.width() == 0 || img.height() == 0 || width == 0 || height == 0 {
        return canvas;
    }

    let (fit_w, fit_h) = fit_inside(img.dimensions(), (width, height));
    let resized = if (fit_w, fit_h) == img.dimensions() {
        premultiply(img)
    } else {
        premultiply(&crate::resize::rgba_premultiplied(
            img,
            fit_w,
            fit_h,
            RESIZE_FILTER,
        ))
    };

    let (left, top) = ((width - fit_w) / 2, (height - fit_h) / 2);
    for (x, y, p) in resized.enumerate_pixels() {
        canvas.put_pixel(left + x, top + y, from_premultiplied(*p, params.background));
    }
    canvas
}

/// Size of `src` scaled to fit inside `dst` with its aspect ratio kept, rounded to whole
/// pixels; the constraining side matches `dst` exactly and no side is below 1.
pub fn fit_inside(src: (u32, u32), dst: (u32, u32)) -> (u32, u32) {
    let (sw, sh) = (u64::from(src.0.max(1)), u64::from(src.1.max(1)));
    let (dw, dh) = (u64::from(dst.0), u64::from(dst.1));
    // Compare dw/sw with dh/sh by cross-multiplying, so equal ratios stay exact.
    let (w, h) = if dw * sh <= dh * sw {
        (dw, (sh * dw + sw / 2) / sw)
    } else {
        ((sw * dh + sh / 2) / sh, dh)
    };
    let clamp = |v: u64, max: u64| u32::try_from(v.clamp(1, max.max(1))).unwrap_or(u32::MAX);
    (clamp(w, dw), clamp(h, dh))
}

/// A feathered ellipse filling a `width × height` frame: 255 inside, 0 outside, with a
/// smooth ramp `feather_px` wide running inwards from the ellipse's edge (which touches the
/// middle of each side of the frame).
///
/// The ramp uses smoothstep, so the fade has no visible start or end line. A feather under
/// one pixel still anti-aliases the edge over one pixel.
pub fn oval_mask(width: u32, height: u32, feather_px: f32) -> GrayImage {
    let (a, b) = (f64::from(width) / 2.0, f64::from(height) / 2.0);
    let feather = f64::from(feather_px).max(1.0);
    GrayImage::from_fn(width, height, |x, y| {
        // Pixel centres, relative to the ellipse's centre.
        let dx = f64::from(x) + 0.5 - a;
        let dy = f64::from(y) + 0.5 - b;
        let (nx, ny) = (dx / a, dy / b);
        let rho = (nx * nx + ny * ny).sqrt();
        if rho == 0.0 {
            return image::Luma([u8::MAX]);
        }
        // Distance inside the edge, to first order: (1 − ρ) / |∇ρ|, where
        // ∇ρ = (dx/a², dy/b²) / ρ. Exact on a circle, and accurate near the edge of an
        // ellipse, which is the only place the ramp needs it.
        let grad = ((dx / (a * a)).powi(2) + (dy / (b * b)).powi(2)).sqrt() / rho;
        let inside = (1.0 - rho) / grad;
        let t = (inside / feather).clamp(0.0, 1.0);
        let smooth = t * t * (3.0 - 2.0 * t);
        image::Luma([unit_to_u8(smooth)])
    })
}

/// Fades `img` into `background` where `mask` is below 255: the mask multiplies the image's
/// alpha. With a colour background the result is opaque (the image composited over the
/// colour); with [`Background::Transparent`] the colour is kept and only alpha changes.
pub fn apply_mask(
    img: &RgbaImage,
    mask: &GrayImage,
    background: Background,
) -> Result<RgbaImage, ComposeError> {
    if img.dimensions() != mask.dimensions() {
        return Err(ComposeError::MaskSizeMismatch {
            width: img.width(),
            height: img.height(),
            mask_width: mask.width(),
            mask_height: mask.height(),
        });
    }
    let mut out = img.clone();
    for (p, m) in out.pixels_mut().zip(mask.pixels()) {
        let [r, g, b, a] = p.0;
        let alpha = mul_div255(u32::from(a), u32::from(m.0[0]));
        *p = match background {
            Background::Color(bg) => over(
                [r, g, b].map(|c| mul_div255(u32::from(c), u32::from(alpha))),
                alpha,
                bg,
            ),
            Background::Transparent => Rgba([r, g, b, alpha]),
        };
    }
    Ok(out)
}

/// Composites `img` over an opaque colour and drops alpha, e.g. to write a JPEG of a
/// transparent portrait.
pub fn flatten(img: &RgbaImage, color: [u8; 3]) -> RgbImage {
    // One pass over the bytes; opaque pixels (all of most photos) are copied as they are.
    let mut out = Vec::with_capacity(img.as_raw().len() / 4 * 3);
    for p in img.as_raw().chunks_exact(4) {
        let [r, g, b, a] = [p[0], p[1], p[2], p[3]];
        if a == u8::MAX {
            out.extend_from_slice(&[r, g, b]);
        } else {
            let premultiplied = [r, g, b].map(|c| mul_div255(u32::from(c), u32::from(a)));
            let [r, g, b, _] = over(premultiplied, a, color).0;
            out.extend_from_slice(&[r, g, b]);
        }
    }
    RgbImage::from_raw(img.width(), img.height(), out).expect("three bytes per pixel")
}

/// The pixel that fills the canvas where there is no image.
fn canvas_pixel(background: Background) -> Rgba<u8> {
    match background {
        Background::Color([r, g, b]) => Rgba([r, g, b, u8::MAX]),
        Background::Transparent => Rgba([0, 0, 0, 0]),
    }
}

/// `img` resized to `width × height` on premultiplied alpha with the letterbox filter (Triangle
/// when shrinking by 2× or more, where it is an area filter and much cheaper); straight alpha
/// again on return.
pub fn resize_premultiplied(img: &RgbaImage, width: u32, height: u32) -> RgbaImage {
    let shrink = width * 2 <= img.width() && height * 2 <= img.height();
    let filter = if shrink {
        Filter::Triangle
    } else {
        RESIZE_FILTER
    };
    crate::resize::rgba_premultiplied(img, width, height, filter)
}

/// Straight → premultiplied alpha, in 8 bits. Exact for opaque pixels (all of a photo);
/// the rounding for translucent ones is below what the later compositing can show.
fn premultiply(img: &RgbaImage) -> RgbaImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let a = u32::from(p.0[3]);
        for c in &mut p.0[..3] {
            *c = mul_div255(u32::from(*c), a);
        }
    }
    out
}

/// Premultiplied pixel → final canvas pixel for `background`.
fn from_premultiplied(p: Rgba<u8>, background: Background) -> Rgba<u8> {
    let [r, g, b, a] = p.0;
    // Resampling can leave a colour above its alpha (ringing on premultiplied data), which
    // is not a valid premultiplied value; clamp it back.
    let colour = [r, g, b].map(|c| c.min(a));
    match background {
        Background::Color(bg) => over(colour, a, bg),
        Background::Transparent => {
            if a == 0 {
                return Rgba([0, 0, 0, 0]);
            }
            let un = |c: u8| {
                let v = (u32::from(c) * 255 + u32::from(a) / 2) / u32::from(a);
                u8::try_from(v.min(255)).unwrap_or(u8::MAX)
            };
            Rgba([un(colour[0]), un(colour[1]), un(colour[2]), a])
        }
    }
}

/// Premultiplied colour with coverage `alpha`, over an opaque background: the Porter-Duff
/// "over" operator.
fn over(premultiplied: [u8; 3], alpha: u8, bg: [u8; 3]) -> Rgba<u8> {
    let rest = 255 - u32::from(alpha);
    let mix = |c: u8, b: u8| {
        let v = u32::from(c) + u32::from(mul_div255(u32::from(b), rest));
        u8::try_from(v.min(255)).unwrap_or(u8::MAX)
    };
    Rgba([
        mix(premultiplied[0], bg[0]),
        mix(premultiplied[1], bg[1]),
        mix(premultiplied[2], bg[2]),
        u8::MAX,
    ])
}

/// `a · b / 255`, rounded to nearest, for `a, b ≤ 255`.
fn mul_div255(a: u32, b: u32) -> u8 {
    // The classic exact form of round(a·b/255) (Blinn, "Three wrongs make a right").
    let t = a * b + 128;
    u8::try_from((t + (t >> 8)) >> 8).unwrap_or(u8::MAX)
}

/// `[0, 1]` → `0..=255`, rounded.
fn unit_to_u8(v: f64) -> u8 {
    // The value is clamped to 0..=255 first, so the cast cannot truncate.
    crate::round_u8((v.clamp(0.0, 1.0) * 255.0) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREY: [u8; 3] = [240, 240, 240];

    fn params(width: u32, height: u32, background: Background) -> ComposeParams {
        ComposeParams {
            width,
            height,
            background,
        }
    }

    fn rgba(c: [u8; 4]) -> Rgba<u8> {
        Rgba(c)
    }

    fn testdata(name: &str) -> Option<Vec<u8>> {
        Some(crate::testdata::bytes(name))
    }

    #[test]
    fn defaults_match_the_reference_service() {
        let p = ComposeParams::default();
        assert_eq!((p.width, p.height), (648, 648));
        assert_eq!(p.background, Background::Color([240, 240, 240]));
        assert!(p.validate().is_ok());
    }

    #[test]
    fn validate_rejects_empty_and_huge_canvases() {
        for (w, h) in [(0, 648), (648, 0), (4097, 10), (10, 100_000)] {
            let e = params(w, h, Background::default())
                .validate()
                .expect_err("should be rejected");
            assert_eq!(e.code(), "invalid_params");
            assert!(e.to_string().contains(&format!("{w}×{h}")));
        }
        assert!(params(1, 1, Background::Transparent).validate().is_ok());
        assert!(params(4096, 4096, Background::Transparent)
            .validate()
            .is_ok());
    }

    #[test]
    fn fit_inside_keeps_aspect_and_fills_the_constraining_side() {
        assert_eq!(fit_inside((512, 512), (648, 648)), (648, 648));
        assert_eq!(fit_inside((1000, 500), (648, 648)), (648, 324));
        assert_eq!(fit_inside((300, 900), (648, 648)), (216, 648));
        assert_eq!(fit_inside((4000, 3000), (600, 800)), (600, 450));
        assert_eq!(fit_inside((3, 2), (648, 648)), (648, 432));
        // Extreme strips never collapse to zero.
        assert_eq!(fit_inside((10_000, 1), (648, 648)), (648, 1));
        assert_eq!(fit_inside((1, 10_000), (648, 648)), (1, 648));
        // Same aspect ratio: exact canvas size, no off-by-one from float rounding.
        assert_eq!(fit_inside((1296, 972), (648, 486)), (648, 486));
        assert_eq!(fit_inside((333, 999), (100, 300)), (100, 300));
    }

    #[test]
    fn wide_image_is_centred_with_bars_above_and_below() {
        // Sizes are kept small throughout: image's generic resize is compiled in this crate,
        // unoptimised in test builds.
        let red = RgbaImage::from_pixel(500, 250, rgba([200, 10, 10, 255]));
        let out = letterbox(&red, &params(324, 324, Background::Color(GREY)));
        assert_eq!(out.dimensions(), (324, 324));
        // 500×250 → 324×162, placed at y = 81..243.
        for x in [0, 150, 323] {
            assert_eq!(out.get_pixel(x, 0).0, [240, 240, 240, 255]);
            assert_eq!(out.get_pixel(x, 80).0, [240, 240, 240, 255]);
            assert_eq!(out.get_pixel(x, 81).0, [200, 10, 10, 255]);
            assert_eq!(out.get_pixel(x, 242).0, [200, 10, 10, 255]);
            assert_eq!(out.get_pixel(x, 243).0, [240, 240, 240, 255]);
            assert_eq!(out.get_pixel(x, 323).0, [240, 240, 240, 255]);
        }
    }

    #[test]
    fn tall_image_is_centred_with_bars_left_and_right() {
        let blue = RgbaImage::from_pixel(150, 450, rgba([0, 0, 255, 255]));
        let out = letterbox(&blue, &params(324, 324, Background::Color([1, 2, 3])));
        // 150×450 → 108×324, placed at x = 108..216.
        assert_eq!(out.get_pixel(107, 150).0, [1, 2, 3, 255]);
        assert_eq!(out.get_pixel(108, 150).0, [0, 0, 255, 255]);
        assert_eq!(out.get_pixel(215, 150).0, [0, 0, 255, 255]);
        assert_eq!(out.get_pixel(216, 150).0, [1, 2, 3, 255]);
    }

    #[test]
    fn odd_leftover_puts_the_extra_pixel_on_the_right() {
        // 2×3 into 7×3 → 2×3 (no resize), leftover 5: 2 on the left, 3 on the right.
        let img = RgbaImage::from_pixel(2, 3, rgba([9, 9, 9, 255]));
        let out = letterbox(&img, &params(7, 3, Background::Color([0, 0, 0])));
        let row: Vec<u8> = (0..7).map(|x| out.get_pixel(x, 1).0[0]).collect();
        assert_eq!(row, [0, 0, 9, 9, 0, 0, 0]);
    }

    #[test]
    fn same_size_input_is_copied_exactly() {
        let img = RgbaImage::from_fn(64, 48, |x, y| {
            rgba([
                u8::try_from(x * 3).expect("u8"),
                u8::try_from(y * 5).expect("u8"),
                77,
                255,
            ])
        });
        let out = letterbox(&img, &params(64, 48, Background::Color(GREY)));
        assert_eq!(out, img);
    }

    #[test]
    fn alpha_is_composited_over_the_colour() {
        let img = RgbaImage::from_pixel(10, 10, rgba([255, 0, 0, 128]));
        let out = letterbox(&img, &params(10, 10, Background::Color([0, 0, 255])));
        // 128/255 red over blue: (128, 0, 127).
        assert_eq!(out.get_pixel(5, 5).0, [128, 0, 127, 255]);
    }

    #[test]
    fn transparent_background_keeps_alpha() {
        let img = RgbaImage::from_fn(100, 50, |x, _| {
            rgba([10, 200, 30, if x < 50 { 255 } else { 100 }])
        });
        let out = letterbox(&img, &params(100, 100, Background::Transparent));
        // Bars are fully transparent; the image keeps its colour and alpha.
        assert_eq!(out.get_pixel(50, 10).0, [0, 0, 0, 0]);
        assert_eq!(out.get_pixel(10, 50).0, [10, 200, 30, 255]);
        let p = out.get_pixel(90, 50).0;
        assert_eq!(p[3], 100);
        assert!(p[0].abs_diff(10) <= 2 && p[1].abs_diff(200) <= 2 && p[2].abs_diff(30) <= 2);
    }

    #[test]
    fn transparent_pixels_do_not_leave_dark_fringes() {
        // Left half opaque white, right half transparent *black*: resizing straight alpha
        // would blend the black into the edge and draw a grey line on a white background.
        let img = RgbaImage::from_fn(301, 200, |x, _| {
            if x < 150 {
                rgba([255, 255, 255, 255])
            } else {
                rgba([0, 0, 0, 0])
            }
        });
        for size in [97, 451] {
            let out = letterbox(
                &img,
                &params(size, size, Background::Color([255, 255, 255])),
            );
            for p in out.pixels() {
                assert!(p.0[..3].iter().all(|&c| c >= 254), "fringe pixel {p:?}");
            }
            let out = letterbox(&img, &params(size, size, Background::Transparent));
            for p in out.pixels().filter(|p| p.0[3] >= 16) {
                assert!(p.0[..3].iter().all(|&c| c >= 240), "fringe pixel {p:?}");
            }
        }
    }

    #[test]
    fn resizing_a_hard_edge_overshoots_only_slightly() {
        // A 60 → 190 step. Shrinking (the usual case: a camera photo's crop) must barely
        // overshoot; enlarging a small upload may overshoot a little more, but never by the
        // 10+ % of the step that reads as a halo (Lanczos3 reaches 12 %).
        let step = |w: u32, h: u32| {
            RgbaImage::from_fn(w, h, |x, _| {
                let v = if x < w / 2 { 60 } else { 190 };
                rgba([v, v, v, 255])
            })
        };
        for (w, tolerance) in [(400, 3), (700, 3), (90, 10), (161, 10)] {
            let out = letterbox(&step(w, 8), &params(200, 200, Background::Transparent));
            let (lo, hi) = out
                .pixels()
                .filter(|p| p.0[3] != 0)
                .map(|p| p.0[0])
                .fold((255, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
            assert!(
                lo >= 60 - tolerance && hi <= 190 + tolerance,
                "{w}: range {lo}..={hi}"
            );
        }
    }

    #[test]
    fn constant_image_stays_constant_when_resized() {
        for (w, h) in [(37, 91), (700, 500), (300, 1)] {
            let img = RgbaImage::from_pixel(w, h, rgba([123, 45, 67, 255]));
            let out = letterbox(&img, &params(300, 300, Background::Transparent));
            for p in out.pixels().filter(|p| p.0[3] != 0) {
                assert_eq!(p.0, [123, 45, 67, 255], "{w}×{h}");
            }
        }
    }

    #[test]
    fn empty_input_gives_the_background() {
        let out = letterbox(&RgbaImage::new(0, 0), &ComposeParams::default());
        assert_eq!(out.dimensions(), (648, 648));
        assert!(out.pixels().all(|p| p.0 == [240, 240, 240, 255]));
    }

    #[test]
    fn photo_upscales_to_the_canvas_with_its_colours_kept() {
        let Some(bytes) = testdata("astronaut.png") else {
            panic!("astronaut.png not found next to the repo");
        };
        let photo = image::load_from_memory(&bytes)
            .expect("astronaut decodes")
            .to_rgba8();
        let out = letterbox(&photo, &ComposeParams::default());
        assert_eq!(out.dimensions(), (648, 648));
        // Square into square: no bars, and the mean colour is unchanged by resampling.
        let mean = |img: &RgbaImage, c: usize| {
            let sum: u64 = img.pixels().map(|p| u64::from(p.0[c])).sum();
            sum as f64 / f64::from(img.width() * img.height())
        };
        for c in 0..3 {
            let (a, b) = (mean(&photo, c), mean(&out, c));
            assert!((a - b).abs() < 1.0, "channel {c}: {a} vs {b}");
        }
        // A point maps to the same relative place: compare a smooth area (the background
        // wall right of the head at 85 %, 20 %).
        let src = photo.get_pixel(435, 102).0;
        let dst = out.get_pixel(551, 129).0;
        for c in 0..3 {
            assert!(src[c].abs_diff(dst[c]) <= 20, "{src:?} vs {dst:?}");
        }
    }

    #[test]
    fn oval_mask_is_255_inside_0_outside_and_symmetric() {
        let (w, h) = (200u32, 300u32);
        let mask = oval_mask(w, h, 12.0);
        assert_eq!(mask.dimensions(), (w, h));
        assert_eq!(mask.get_pixel(100, 150).0[0], 255);
        for (x, y) in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (20, 30)] {
            assert_eq!(mask.get_pixel(x, y).0[0], 0, "({x},{y})");
        }
        // The ellipse touches the middle of each side, where the ramp starts from ~0.
        assert!(mask.get_pixel(100, 0).0[0] < 8);
        assert!(mask.get_pixel(0, 150).0[0] < 8);
        // Fully inside once past the feather.
        assert_eq!(mask.get_pixel(100, 20).0[0], 255);
        assert_eq!(mask.get_pixel(20, 150).0[0], 255);
        for (x, y, p) in mask.enumerate_pixels() {
            assert_eq!(p.0, mask.get_pixel(w - 1 - x, y).0, "({x},{y})");
            assert_eq!(p.0, mask.get_pixel(x, h - 1 - y).0, "({x},{y})");
        }
    }

    #[test]
    fn oval_mask_ramp_is_monotonic_and_feather_wide() {
        let mask = oval_mask(400, 400, 20.0);
        let row: Vec<u8> = (0..200).map(|x| mask.get_pixel(x, 200).0[0]).collect();
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "ramp not monotonic");
        // Smoothstep rounds to 0 / 255 within half a pixel of either end, hence 18–21.
        let ramp = row.iter().filter(|&&v| v > 0 && v < 255).count();
        assert!((18..=21).contains(&ramp), "ramp is {ramp} px");
        // Same along a diagonal of a circle: the feather is measured in pixels, not in
        // normalised radius.
        let diagonal: Vec<u8> = (0..200).map(|i| mask.get_pixel(i, i).0[0]).collect();
        let ramp_diagonal = diagonal.iter().filter(|&&v| v > 0 && v < 255).count();
        // Stepping (1, 1) covers √2 px of distance per pixel.
        assert!((12..=15).contains(&ramp_diagonal), "{ramp_diagonal}");
    }

    #[test]
    fn oval_mask_without_feather_is_a_sharp_antialiased_edge() {
        let mask = oval_mask(64, 64, 0.0);
        let row: Vec<u8> = (0..32).map(|x| mask.get_pixel(x, 32).0[0]).collect();
        let partial = row.iter().filter(|&&v| v > 0 && v < 255).count();
        assert!(partial <= 1, "{row:?}");
        assert_eq!(row[2], 255);
    }

    #[test]
    fn apply_mask_fades_to_the_background_colour() {
        let img = RgbaImage::from_pixel(3, 1, rgba([200, 100, 0, 255]));
        let mask = GrayImage::from_raw(3, 1, vec![0, 128, 255]).expect("mask");
        let out = apply_mask(&img, &mask, Background::Color([0, 0, 200])).expect("same size");
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 200, 255]);
        assert_eq!(out.get_pixel(1, 0).0, [100, 50, 100, 255]);
        assert_eq!(out.get_pixel(2, 0).0, [200, 100, 0, 255]);
    }

    #[test]
    fn apply_mask_multiplies_alpha_when_transparent() {
        let img = RgbaImage::from_fn(3, 1, |x, _| rgba([10, 20, 30, [255, 128, 0][x as usize]]));
        let mask = GrayImage::from_raw(3, 1, vec![128, 128, 255]).expect("mask");
        let out = apply_mask(&img, &mask, Background::Transparent).expect("same size");
        assert_eq!(out.get_pixel(0, 0).0, [10, 20, 30, 128]);
        assert_eq!(out.get_pixel(1, 0).0, [10, 20, 30, 64]);
        assert_eq!(out.get_pixel(2, 0).0, [10, 20, 30, 0]);
    }

    #[test]
    fn oval_on_a_letterboxed_portrait_leaves_background_corners() {
        let img = RgbaImage::from_pixel(250, 250, rgba([30, 60, 90, 255]));
        let p = ComposeParams {
            width: 324,
            height: 324,
            ..ComposeParams::default()
        };
        let boxed = letterbox(&img, &p);
        let out = apply_mask(&boxed, &oval_mask(p.width, p.height, 24.0), p.background)
            .expect("same size");
        assert_eq!(out.get_pixel(0, 0).0, [240, 240, 240, 255]);
        assert_eq!(out.get_pixel(323, 323).0, [240, 240, 240, 255]);
        assert_eq!(out.get_pixel(162, 162).0, [30, 60, 90, 255]);
    }

    #[test]
    fn apply_mask_rejects_a_mask_of_another_size() {
        let e = apply_mask(
            &RgbaImage::new(10, 10),
            &GrayImage::new(10, 11),
            Background::Transparent,
        )
        .expect_err("size mismatch");
        assert_eq!(e.code(), "internal");
    }

    #[test]
    fn flatten_composites_and_drops_alpha() {
        let img = RgbaImage::from_raw(3, 1, vec![255, 0, 0, 255, 255, 0, 0, 0, 255, 0, 0, 128])
            .expect("image");
        let out = flatten(&img, [255, 255, 255]);
        assert_eq!(out.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(out.get_pixel(1, 0).0, [255, 255, 255]);
        assert_eq!(out.get_pixel(2, 0).0, [255, 127, 127]);
    }

    #[test]
    fn mul_div255_is_exact_rounding() {
        for a in 0..=255u32 {
            for b in 0..=255u32 {
                let want = (f64::from(a * b) / 255.0).round();
                assert_eq!(f64::from(mul_div255(a, b)), want, "{a}·{b}");
            }
        }
    }
}
