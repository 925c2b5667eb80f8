//! Enhance stage (optional): auto-exposure, white balance, mild contrast and sharpening.
//!
//! Corrections are deliberately timid: a portrait that was fine must stay fine, so each one
//! has a dead band or a gain limit, and every step falls back to "leave it" when its
//! statistics are unreliable (a uniform image, no neutral colours). Alpha is never changed.
//!
//! Exposure, white balance and contrast are per-channel point operations, folded into one
//! 256-entry lookup table per channel; gains are applied in linear light (sRGB decoded, IEC
//! 61966-2-1), where scaling models a change of exposure or illuminant. Sharpening is an
//! unsharp mask on luma only, so it cannot create colour fringes.

use facecraft_contract::ErrorCode;
use image::{GrayImage, RgbaImage};

/// Enhancement settings. Every default is chosen to leave a well-exposed, neutral photo
/// almost untouched (under 3 levels of mean change on the reference test photos).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnhanceParams {
    /// Auto-exposure: scale the subject's median luminance towards
    /// [`exposure_target`](Self::exposure_target). Default: on.
    pub exposure: bool,
    /// Target for the subject's median linear luminance. Default: 0.18, photographic middle
    /// grey (an 18 % grey card; sRGB 118), the key value of Reinhard et al. 2002,
    /// "Photographic tone reproduction for digital images".
    pub exposure_target: f32,
    /// Errors smaller than this, in stops (EV), are left alone and larger ones are reduced
    /// by it (a soft dead band, so the correction has no jump). Default: 0.75 EV: a portrait
    /// subject's median is legitimately off middle grey (dark hair and clothes, pale shirt),
    /// and the half-stop steps of camera exposure compensation are within taste.
    pub exposure_dead_band_ev: f32,
    /// Most brightening, in stops. Default: 2 (×4 in linear light); beyond that the noise
    /// of an underexposed phone photo turns into visible grain.
    pub max_brighten_ev: f32,
    /// Most darkening, in stops. Default: 1. Blown highlights cannot be recovered, so darker
    /// only turns clipped white into flat grey.
    pub max_darken_ev: f32,
    /// Gray-world white balance over near-neutral pixels. Default: on.
    pub white_balance: bool,
    /// Casts smaller than this are left alone, and larger ones are reduced by it: each
    /// channel's gain is shrunk towards 1 by this much in log terms (0.05 ≈ 5 %). Default:
    /// 0.05. Slight warmth is often intended (a studio backdrop, evening light) and is where
    /// gray-world is least reliable: on the astronaut test photo it wants to cool a warm-grey
    /// backdrop by 9 %.
    pub white_balance_dead_band: f32,
    /// Each channel's white-balance gain is kept within `[1 / max, max]`. Default: 1.25
    /// (gains within [0.8, 1.25]): enough for a tungsten or shade cast left by a phone's own
    /// white balance, too little to turn a person in a red shirt cyan when gray-world is
    /// wrong.
    pub max_white_balance_gain: f32,
    /// Unsharp-mask amount, as a fraction of the detail added back; 0 turns sharpening
    /// off. Default: 0.4, chosen by eye and measured: it adds under 0.9 levels of mean
    /// change to the test photos, and overshoots a hard 80-level edge by about 9 levels.
    /// Kept low because skin texture is the first thing sharpening exaggerates.
    pub sharpen: f32,
    /// Unsharp-mask Gaussian sigma, in pixels. Default: 1.0.
    pub sharpen_sigma: f32,
    /// Luma differences (0–255 levels) under this are not sharpened, and larger ones are
    /// reduced by it (soft threshold), so flat skin and sensor noise stay smooth. Default: 3.
    pub sharpen_threshold: f32,
    /// Strength of a smoothstep S-curve blended into each channel (sRGB-encoded), 0 = none,
    /// 1 = full smoothstep. Default: 0.1: mid-tone slope 1.05 (+5 % contrast); ends fixed,
    /// so nothing clips; tones move by at most 2.5 levels (near 21 % and 79 % grey).
    pub contrast: f32,
}

impl Default for EnhanceParams {
    fn default() -> Self {
        Self {
            exposure: true,
            exposure_target: 0.18,
            exposure_dead_band_ev: 0.75,
            max_brighten_ev: 2.0,
            max_darken_ev: 1.0,
            white_balance: true,
            white_balance_dead_band: 0.05,
            max_white_balance_gain: 1.25,
            sharpen: 0.4,
            sharpen_sigma: 1.0,
            sharpen_threshold: 3.0,
            contrast: 0.1,
        }
    }
}

impl EnhanceParams {
    /// Rejects values that make no sense (negative or non-finite amounts, a target outside
    /// `(0, 1)`, a white-balance limit under 1, a sigma over 20 px).
    pub fn validate(&self) -> Result<(), EnhanceError> {
        let checks = [
            (
                self.exposure_target > 0.0 && self.exposure_target < 1.0,
                "exposure_target must be in (0, 1)",
            ),
            (
                non_negative(self.exposure_dead_band_ev),
                "exposure_dead_band_ev must be ≥ 0",
            ),
            (
                non_negative(self.max_brighten_ev),
                "max_brighten_ev must be ≥ 0",
            ),
            (
                non_negative(self.max_darken_ev),
                "max_darken_ev must be ≥ 0",
            ),
            (
                non_negative(self.white_balance_dead_band),
                "white_balance_dead_band must be ≥ 0",
            ),
            (
                self.max_white_balance_gain.is_finite() && self.max_white_balance_gain >= 1.0,
                "max_white_balance_gain must be ≥ 1",
            ),
            (non_negative(self.sharpen), "sharpen must be ≥ 0"),
            (
                self.sharpen_sigma > 0.0 && self.sharpen_sigma <= 20.0,
                "sharpen_sigma must be in (0, 20]",
            ),
            (
                non_negative(self.sharpen_threshold),
                "sharpen_threshold must be ≥ 0",
            ),
            (
                (0.0..=1.0).contains(&self.contrast),
                "contrast must be in [0, 1]",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(EnhanceError::InvalidParams(why)),
            None => Ok(()),
        }
    }
}

/// Errors of the enhance stage; both are bugs in the caller, not properties of the photo.
#[derive(Debug, thiserror::Error)]
pub enum EnhanceError {
    /// The subject mask does not match the image.
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
    /// A parameter is out of range (see [`EnhanceParams::validate`]).
    #[error("invalid enhance parameters: {0}")]
    InvalidParams(&'static str),
}

impl EnhanceError {
    /// Stable snake_case code for HTTP bodies and failed-job records.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::MaskSizeMismatch { .. } | Self::InvalidParams(_) => ErrorCode::Internal,
        }
    }
}

/// Enhances `img` in place.
///
/// `mask` (255 = subject, as the segmenter's matte) picks the pixels whose brightness
/// drives auto-exposure: pixels at 128 or more that are not fully transparent. Without a
/// mask, or when it selects nothing, every pixel with alpha > 0 counts. White balance always
/// measures every visible pixel, mask or not: the illuminant is a property of the scene,
/// and a subject alone (skin, hair, one shirt) is the worst possible gray-world sample.
///
/// Steps, each skipped when its parameter turns it off:
///
/// 1. **White balance** (gray-world on near-neutral pixels): the mean linear colour of
///    pixels whose sRGB saturation `(max − min) / max` is at most 0.25, excluding near-black
///    (max < 16) and near-clipped (max > 250) pixels whose colour is unreliable, is mapped
///    to grey of the same luminance; each gain is shrunk towards 1 by the dead band and
///    clamped to `[1 / g, g]` for `g = max_white_balance_gain`. Limits, since gray-world is fragile: a scene with no
///    neutral surface (under 5 % of visible pixels qualify) is left alone; a scene whose
///    "neutrals" are all one tint (a beige wall, pale skin filling the frame) is pulled
///    towards grey by up to the gain limit; a strong cast (saturation over 0.25 on grey)
///    is left alone rather than guessed at.
/// 2. **Exposure**: the median linear luminance (Rec. 709 weights) of the subject, after
///    white balance, is scaled towards `exposure_target`, less a soft dead band, within the
///    brighten/darken limits. Brightening is further limited so the subject's 99th
///    percentile stays under 0.9 (linear; sRGB 243), and whatever still exceeds the knee at
///    0.8 is rolled off smoothly instead of clipping.
/// 3. **Contrast**: a mild S-curve per channel.
/// 4. **Sharpen**: unsharp mask on luma, with alpha-weighted blur so transparent pixels'
///    colour does not leak into edges.
///
/// A subject whose luminance is uniform (1st and 99th percentile within 2 levels) gets no
/// point operations at all: there is nothing to measure, and a blank frame must stay
/// blank. Sharpening does nothing on uniform areas by construction. The result is
/// deterministic.
pub fn enhance(
    img: &mut RgbaImage,
    mask: Option<&GrayImage>,
    params: &EnhanceParams,
) -> Result<(), EnhanceError> {
    params.validate()?;
    if let Some(m) = mask {
        if m.dimensions() != img.dimensions() {
            return Err(EnhanceError::MaskSizeMismatch {
                width: img.width(),
                height: img.height(),
                mask_width: m.width(),
                mask_height: m.height(),
            });
        }
    }
    if img.width() == 0 || img.height() == 0 {
        return Ok(());
    }

    let decode = decode_lut();
    let wb = if params.white_balance {
        white_balance_gains(
            img,
            &decode,
            params.white_balance_dead_band,
            params.max_white_balance_gain,
        )
    } else {
        [1.0; 3]
    };
    if let Some(stats) = subject_luminance(img, mask, &decode, wb) {
        if !stats.is_flat() {
            let exposure = if params.exposure {
                exposure_gain(&stats, params)
            } else {
                1.0
            };
            let luts: [[u8; 256]; 3] =
                [0, 1, 2].map(|c| channel_lut(&decode, wb[c] * exposure, params.contrast));
            for p in img.pixels_mut() {
                for (c, lut) in p.0[..3].iter_mut().zip(&luts) {
                    *c = lut[usize::from(*c)];
                }
            }
        }
    }
    if params.sharpen > 0.0 {
        sharpen_luma(img, params);
    }
    Ok(())
}

fn non_negative(v: f32) -> bool {
    v.is_finite() && v >= 0.0
}

/// sRGB-encoded level → linear light, for every 8-bit level (IEC 61966-2-1).
fn decode_lut() -> [f32; 256] {
    std::array::from_fn(|v| {
        let c = v as f32 / 255.0;
        if c <= 0.040_45 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    })
}

/// Linear light → sRGB-encoded, both in `[0, 1]` (IEC 61966-2-1).
fn encode(l: f32) -> f32 {
    let l = l.clamp(0.0, 1.0);
    if l <= 0.003_130_8 {
        12.92 * l
    } else {
        1.055 * l.powf(1.0 / 2.4) - 0.055
    }
}

/// Rec. 709 / sRGB luminance weights for linear R, G, B.
const LUMINANCE: [f32; 3] = [0.2126, 0.7152, 0.0722];

/// Gray-world gains over near-neutral visible pixels (see [`enhance`] for the rules).
fn white_balance_gains(
    img: &RgbaImage,
    decode: &[f32; 256],
    dead_band: f32,
    max_gain: f32,
) -> [f32; 3] {
    // Saturation up to 0.25 covers grey under a moderate cast (the blue-cast test's grey,
    // linear R × 0.85 and B × 1.2, measures about 0.15; grey under tungsten light with no
    // white balance at all, about 0.6, is left alone) while excluding most skin (0.3 and up;
    // pale skin from about 0.2).
    const MAX_SATURATION: f32 = 0.25;
    const MIN_NEUTRAL_SHARE: f64 = 0.05;
    let (mut sum, mut neutral, mut visible) = ([0.0f64; 3], 0u64, 0u64);
    for p in img.pixels().filter(|p| p.0[3] > 0) {
        visible += 1;
        let [r, g, b, _] = p.0;
        let (hi, lo) = (r.max(g).max(b), r.min(g).min(b));
        if !(16..=250).contains(&hi) {
            continue;
        }
        if f32::from(hi - lo) > MAX_SATURATION * f32::from(hi) {
            continue;
        }
        neutral += 1;
        for (s, v) in sum.iter_mut().zip([r, g, b]) {
            *s += f64::from(decode[usize::from(v)]);
        }
    }
    // u64 → f64 is exact up to 2^53 pixels.
    if neutral == 0 || (neutral as f64) < MIN_NEUTRAL_SHARE * visible as f64 {
        return [1.0; 3];
    }
    let mean = sum.map(|s| s / neutral as f64);
    let grey: f64 = mean
        .iter()
        .zip(LUMINANCE)
        .map(|(m, w)| m * f64::from(w))
        .sum();
    let (dead_band, limit) = (f64::from(dead_band), f64::from(max_gain).ln());
    mean.map(|m| {
        if m <= 0.0 {
            return 1.0;
        }
        let log_gain = (grey / m).ln();
        let shrunk = (log_gain.abs() - dead_band).max(0.0) * log_gain.signum();
        // Gains are near 1; f32 is plenty.
        shrunk.clamp(-limit, limit).exp() as f32
    })
}

/// Luminance statistics of the subject pixels.
struct LuminanceStats {
    /// Linear-luminance percentiles.
    p01: f32,
    p50: f32,
    p99: f32,
}

impl LuminanceStats {
    /// Within 2 sRGB levels from the 1st to the 99th percentile.
    fn is_flat(&self) -> bool {
        (encode(self.p99) - encode(self.p01)) * 255.0 < 2.0
    }
}

/// Percentiles of the subject's linear luminance after the white-balance gains; `None` when
/// no pixel is visible.
fn subject_luminance(
    img: &RgbaImage,
    mask: Option<&GrayImage>,
    decode: &[f32; 256],
    wb: [f32; 3],
) -> Option<LuminanceStats> {
    // 16384 bins over [0, 1] resolve 0.06 % at middle grey and 2.5 % at sRGB 10, finer than
    // any decision taken from them.
    const BINS: usize = 1 << 14;
    let weights: [f32; 3] = std::array::from_fn(|c| LUMINANCE[c] * wb[c]);
    let mut histogram = vec![0u64; BINS];
    let mut fill = |use_mask: bool| {
        let mut n = 0u64;
        for (i, p) in img.pixels().enumerate() {
            let selected = p.0[3] > 0
                && (!use_mask
                    || mask.is_some_and(|m| m.as_raw().get(i).is_some_and(|&v| v >= 128)));
            if !selected {
                continue;
            }
            let y: f32 = (0..3)
                .map(|c| weights[c] * decode[usize::from(p.0[c])])
                .sum();
            // Clamped to 0..BINS − 1 first, so the cast cannot truncate.
            let bin = (y * (BINS - 1) as f32)
                .round()
                .clamp(0.0, (BINS - 1) as f32) as usize;
            histogram[bin] += 1;
            n += 1;
        }
        n
    };
    let mut count = if mask.is_some() { fill(true) } else { 0 };
    if count == 0 {
        count = fill(false);
    }
    if count == 0 {
        return None;
    }
    let percentile = |q: f64| {
        // The rank of the q-th percentile, at least 1.
        let rank = ((q * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        let bin = histogram
            .iter()
            .position(|&h| {
                seen += h;
                seen >= rank
            })
            .unwrap_or(BINS - 1);
        bin as f32 / (BINS - 1) as f32
    };
    Some(LuminanceStats {
        p01: percentile(0.01),
        p50: percentile(0.50),
        p99: percentile(0.99),
    })
}

/// Linear gain bringing the subject's median towards the target (see [`enhance`]).
fn exposure_gain(stats: &LuminanceStats, params: &EnhanceParams) -> f32 {
    // Highlight guard: brightening stops where the 99th percentile reaches 0.9 linear.
    const HIGHLIGHT: f32 = 0.9;
    let median = stats.p50.max(1e-5);
    let error = (params.exposure_target / median).log2();
    let ev = (error.abs() - params.exposure_dead_band_ev).max(0.0) * error.signum();
    let ev = ev.clamp(-params.max_darken_ev, params.max_brighten_ev);
    let gain = ev.exp2();
    if gain > 1.0 {
        gain.min((HIGHLIGHT / stats.p99.max(1e-5)).max(1.0))
    } else {
        gain
    }
}

/// One channel's table: decode, multiply by `gain` in linear light with a highlight
/// roll-off, encode, apply the contrast curve.
fn channel_lut(decode: &[f32; 256], gain: f32, contrast: f32) -> [u8; 256] {
    std::array::from_fn(|v| {
        let linear = roll_off(decode[v] * gain, gain);
        let x = encode(linear);
        let smooth = x * x * (3.0 - 2.0 * x);
        to_u8((x + contrast * (smooth - x)) * 255.0)
    })
}

/// Compresses `y ∈ [0, gain]` into `[0, 1]` when `gain > 1`: identity up to the knee, then
/// a rational curve with slope 1 at the knee that reaches exactly 1 at `y = gain`. Smooth and
/// increasing, and the identity as `gain` → 1, so the amount of roll-off never jumps.
fn roll_off(y: f32, gain: f32) -> f32 {
    // Knee at 0.8 linear (sRGB 231): only the top highlights bend.
    const KNEE: f32 = 0.8;
    if gain <= 1.0 || y <= KNEE {
        return y;
    }
    let t = y - KNEE;
    let (room, span) = (1.0 - KNEE, gain - KNEE);
    KNEE + t / (1.0 + t * (1.0 / room - 1.0 / span))
}

/// Unsharp mask on luma: `c += amount × shrink(Y' − blur(Y'), threshold)` for each of R, G,
/// B, with a Gaussian blur weighted by alpha.
fn sharpen_luma(img: &mut RgbaImage, params: &EnhanceParams) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let sigma = params.sharpen_sigma;
    // Three sigmas hold 99.7 % of the Gaussian. validate() bounds sigma, so at most 60 taps.
    let radius = (3.0 * sigma).ceil() as usize;
    let kernel: Vec<f32> = {
        let raw: Vec<f32> = (0..=2 * radius)
            .map(|i| {
                let d = i as f32 - radius as f32;
                (-d * d / (2.0 * sigma * sigma)).exp()
            })
            .collect();
        let total: f32 = raw.iter().sum();
        raw.iter().map(|k| k / total).collect()
    };
    // Rec. 601 luma on the encoded values: the classic "brightness" sharpening works on.
    let luma =
        |p: &[u8]| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
    let raw = img.as_raw();
    let (mut ya, mut a) = (vec![0.0f32; w * h], vec![0.0f32; w * h]);
    for (i, p) in raw.chunks_exact(4).enumerate() {
        let alpha = f32::from(p[3]);
        a[i] = alpha;
        ya[i] = luma(p) * alpha;
    }
    // Horizontal pass, edges replicated.
    let (mut hya, mut ha) = (vec![0.0f32; w * h], vec![0.0f32; w * h]);
    for y in 0..h {
        let row = y * w;
        for x in 0..w {
            let (mut s, mut sa) = (0.0, 0.0);
            for (k, weight) in kernel.iter().enumerate() {
                let sx = (x + k).saturating_sub(radius).min(w - 1);
                s += weight * ya[row + sx];
                sa += weight * a[row + sx];
            }
            hya[row + x] = s;
            ha[row + x] = sa;
        }
    }
    drop((ya, a));
    // Vertical pass, straight into the image.
    let (amount, threshold) = (params.sharpen, params.sharpen_threshold);
    let buf: &mut [u8] = img;
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let p = &mut buf[4 * i..4 * i + 4];
            if p[3] == 0 {
                continue;
            }
            let (mut s, mut sa) = (0.0, 0.0);
            for (k, weight) in kernel.iter().enumerate() {
                let sy = (y + k).saturating_sub(radius).min(h - 1);
                s += weight * hya[sy * w + x];
                sa += weight * ha[sy * w + x];
            }
            if sa <= 0.0 {
                continue;
            }
            let detail = luma(p) - s / sa;
            let shrunk = (detail.abs() - threshold).max(0.0) * detail.signum();
            if shrunk == 0.0 {
                continue;
            }
            let boost = amount * shrunk;
            for c in &mut p[..3] {
                *c = to_u8(f32::from(*c) + boost);
            }
        }
    }
}

/// `0.0..=255.0` → `u8`, rounded half up; out-of-range values are clamped first.
fn to_u8(v: f32) -> u8 {
    crate::round_u8(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgba};

    fn testdata(name: &str) -> Option<Vec<u8>> {
        Some(crate::testdata::bytes(name))
    }

    fn photo(name: &str) -> RgbaImage {
        let Some(bytes) = testdata(name) else {
            panic!("{name} not found next to the repo");
        };
        image::load_from_memory(&bytes)
            .expect("test photo decodes")
            .to_rgba8()
    }

    /// A smooth, neutral "scene": soft blobs and gradients between `lo` and `hi` (sRGB),
    /// with a little per-channel variation so it is not exactly grey.
    fn scene(w: u32, h: u32, lo: f32, hi: f32) -> RgbaImage {
        RgbaImage::from_fn(w, h, |x, y| {
            let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
            let base = 0.5
                + 0.25 * (6.0 * u).sin() * (4.0 * v).cos()
                + 0.2 * (u - 0.5)
                + 0.05 * (17.0 * u + 11.0 * v).sin();
            let t = base.clamp(0.0, 1.0);
            let level = |tint: f32| to_u8(lo + (hi - lo) * (t + tint).clamp(0.0, 1.0));
            Rgba([
                level(0.01 * (3.0 * v).sin()),
                level(0.0),
                level(-0.01 * (5.0 * u).cos()),
                255,
            ])
        })
    }

    /// Mean over visible pixels of one channel, in linear light.
    fn linear_mean(img: &RgbaImage, c: usize) -> f64 {
        let decode = decode_lut();
        let (sum, n) = img
            .pixels()
            .filter(|p| p.0[3] > 0)
            .fold((0.0, 0u32), |(s, n), p| {
                (s + f64::from(decode[usize::from(p.0[c])]), n + 1)
            });
        sum / f64::from(n)
    }

    fn mean_abs_diff(a: &RgbaImage, b: &RgbaImage) -> f64 {
        let sum: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f64 / a.as_raw().len() as f64
    }

    fn median_luminance(img: &RgbaImage) -> f32 {
        subject_luminance(img, None, &decode_lut(), [1.0; 3])
            .expect("visible pixels")
            .p50
    }

    #[test]
    fn too_dark_image_gets_brighter_without_clipping() {
        let dark = scene(200, 150, 5.0, 60.0);
        let mut out = dark.clone();
        enhance(&mut out, None, &EnhanceParams::default()).expect("enhances");
        let (before, after) = (median_luminance(&dark), median_luminance(&out));
        // Median around sRGB 30 (linear 0.013): 3.8 stops under; corrected by the 2-stop
        // cap (the dead band is smaller than what remains).
        assert!(after / before > 3.0, "median {before} → {after}");
        let max = out.pixels().map(|p| p.0[0].max(p.0[1]).max(p.0[2])).max();
        assert!(max.is_some_and(|m| m < 200), "max {max:?}");
        assert!(out.pixels().all(|p| p.0[..3].iter().all(|&c| c < 255)));
        // Order is kept: along a row, brighter inputs stay brighter (or equal).
        let mut pairs: Vec<(u8, u8)> = (0..200)
            .map(|x| (dark.get_pixel(x, 75).0[1], out.get_pixel(x, 75).0[1]))
            .collect();
        pairs.sort_unstable();
        assert!(pairs.windows(2).all(|w| w[0].1 <= w[1].1 + 2), "{pairs:?}");
    }

    #[test]
    fn brightening_is_capped_by_the_highlights() {
        // Mostly dark, with a textured bright window on 4 % of the frame: brightening the
        // median by the full two stops would blow the window out.
        let img = RgbaImage::from_fn(100, 100, |x, y| {
            let v = if x >= 80 && y >= 80 {
                215 + (x - 80) as u8 + (y - 80) as u8 / 2
            } else {
                20 + (x % 10) as u8
            };
            Rgba([v, v, v, 255])
        });
        let mut out = img.clone();
        // Sharpening would add its own overshoot at the window's hard edge.
        let params = EnhanceParams {
            sharpen: 0.0,
            ..EnhanceParams::default()
        };
        enhance(&mut out, None, &params).expect("enhances");
        let window: Vec<u8> = (80..100).map(|x| out.get_pixel(x, 90).0[0]).collect();
        assert!(window.iter().all(|&v| v < 255), "{window:?}");
        // The window's texture survives: in order, and most of its 20 levels distinct.
        assert!(window.windows(2).all(|w| w[0] <= w[1]), "{window:?}");
        assert!(
            window.windows(2).filter(|w| w[0] < w[1]).count() >= 14,
            "{window:?}"
        );
        // And the dark part was hardly brightened (the window caps the gain at ~1.1).
        let dark = out.get_pixel(5, 5).0[0];
        assert!((25..=30).contains(&dark), "{dark}");
    }

    #[test]
    fn a_tiny_highlight_rolls_off_instead_of_capping_the_gain() {
        // Under 1 % of the frame is bright: the 99th percentile is the dark texture, so
        // brightening proceeds and the highlight is compressed, in order, not clipped.
        let img = RgbaImage::from_fn(100, 100, |x, y| {
            let v = if x >= 95 && y >= 95 {
                120 + 10 * (x - 95) as u8
            } else {
                20 + (x % 10) as u8
            };
            Rgba([v, v, v, 255])
        });
        let mut out = img.clone();
        // Sharpening would add its own overshoot at the window's hard edge.
        let params = EnhanceParams {
            sharpen: 0.0,
            ..EnhanceParams::default()
        };
        enhance(&mut out, None, &params).expect("enhances");
        assert!(out.get_pixel(5, 5).0[0] > 40, "{:?}", out.get_pixel(5, 5));
        let spot: Vec<u8> = (95..100).map(|x| out.get_pixel(x, 97).0[0]).collect();
        assert!(spot.windows(2).all(|w| w[0] < w[1]), "{spot:?}");
        assert!(spot.iter().all(|&v| v < 255), "{spot:?}");
    }

    #[test]
    fn bright_image_is_darkened_a_little() {
        let bright = scene(160, 120, 200.0, 250.0);
        let mut out = bright.clone();
        enhance(&mut out, None, &EnhanceParams::default()).expect("enhances");
        let (before, after) = (median_luminance(&bright), median_luminance(&out));
        assert!(
            after < before * 0.75 && after > before * 0.45,
            "{before} → {after}"
        );
    }

    #[test]
    fn blue_cast_becomes_more_neutral() {
        // A neutral scene lit bluish: linear R × 0.85, B × 1.2.
        let neutral = scene(200, 150, 60.0, 200.0);
        let decode = decode_lut();
        let cast = |img: &RgbaImage, gains: [f32; 3]| {
            let mut out = img.clone();
            for p in out.pixels_mut() {
                for c in 0..3 {
                    p.0[c] = to_u8(encode(decode[usize::from(p.0[c])] * gains[c]) * 255.0);
                }
            }
            out
        };
        let blue = cast(&neutral, [0.85, 1.0, 1.2]);
        let ratio = |img: &RgbaImage| (linear_mean(img, 2) / linear_mean(img, 0)).ln().abs();
        let mut out = blue.clone();
        enhance(&mut out, None, &EnhanceParams::default()).expect("enhances");
        assert!(ratio(&blue) > 0.3, "{}", ratio(&blue));
        // The dead band leaves 5 % on each of red and blue: about 0.1 of the 0.35.
        assert!(
            ratio(&out) < 0.35 * ratio(&blue),
            "{} → {}",
            ratio(&blue),
            ratio(&out)
        );
        // Red comes back up towards green, to within the dead band.
        let green_red = |img: &RgbaImage| (linear_mean(img, 1) / linear_mean(img, 0)).ln();
        let (before, after) = (green_red(&blue), green_red(&out));
        assert!(
            after.abs() < 0.5 * before && after.abs() < 0.08,
            "{before} → {after}"
        );
    }

    #[test]
    fn a_red_shirt_does_not_turn_the_photo_cyan() {
        // Grey wall above, saturated red shirt filling the lower two thirds.
        let img = RgbaImage::from_fn(120, 120, |x, y| {
            if y < 40 {
                let v = 150 + (x % 20) as u8;
                Rgba([v, v, v, 255])
            } else {
                Rgba([200, 30 + (x % 10) as u8, 40, 255])
            }
        });
        let params = EnhanceParams {
            sharpen: 0.0,
            contrast: 0.0,
            ..EnhanceParams::default()
        };
        let mut out = img.clone();
        enhance(&mut out, None, &params).expect("enhances");
        // The wall decides the white balance, and it is already grey: no shift.
        assert!(
            mean_abs_diff(&img, &out) < 1.0,
            "{}",
            mean_abs_diff(&img, &out)
        );
        let shirt = out.get_pixel(60, 80).0;
        assert!(shirt[0] >= 195 && shirt[2] <= 45, "{shirt:?}");

        // Only the shirt: nothing neutral to measure, so no white balance at all.
        let shirt_only =
            RgbaImage::from_fn(80, 80, |x, _| Rgba([200, 30 + (x % 10) as u8, 40, 255]));
        let mut out = shirt_only.clone();
        let wb_only = EnhanceParams {
            exposure: false,
            ..params
        };
        enhance(&mut out, None, &wb_only).expect("enhances");
        assert_eq!(out, shirt_only);
    }

    #[test]
    fn white_balance_gains_are_clamped() {
        // Grey under a strong-ish cast within the neutral-saturation window (0.24):
        // gray-world wants more than ×1.25 on blue, and gets 1.25.
        let img = RgbaImage::from_fn(50, 50, |x, _| {
            let v = 140 + (x % 30) as u8;
            Rgba([v, v, (f32::from(v) * 0.77) as u8, 255])
        });
        let gains = white_balance_gains(&img, &decode_lut(), 0.05, 1.25);
        assert!((gains[2] - 1.25).abs() < 1e-6, "{gains:?}");
        // Red and green sit near the luminance-preserving grey, within the dead band.
        assert_eq!(gains[..2], [1.0, 1.0], "{gains:?}");
    }

    #[test]
    fn balanced_photos_change_little() {
        for name in ["astronaut.png", "camera.png"] {
            let img = photo(name);
            let mut out = img.clone();
            enhance(&mut out, None, &EnhanceParams::default()).expect("enhances");
            let diff = mean_abs_diff(&img, &out);
            assert!(diff < 3.0, "{name}: mean abs diff {diff}");
            assert!(diff > 0.0, "{name}: nothing happened");
        }
        let img = scene(200, 150, 40.0, 220.0);
        let mut out = img.clone();
        enhance(&mut out, None, &EnhanceParams::default()).expect("enhances");
        let diff = mean_abs_diff(&img, &out);
        assert!(diff < 3.0, "scene: mean abs diff {diff}");
    }

    #[test]
    fn alpha_is_never_touched() {
        let mut img = scene(120, 90, 10.0, 90.0);
        for (x, y, p) in img.enumerate_pixels_mut() {
            p.0[3] = ((x * 7 + y * 13) % 256) as u8;
        }
        let before: Vec<u8> = img.pixels().map(|p| p.0[3]).collect();
        let mut out = img.clone();
        enhance(&mut out, None, &EnhanceParams::default()).expect("enhances");
        assert_ne!(out, img, "the dark image should have been brightened");
        let after: Vec<u8> = out.pixels().map(|p| p.0[3]).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn uniform_images_are_left_alone() {
        for c in [
            [0, 0, 0, 255],
            [30, 30, 30, 255],
            [250, 250, 250, 255],
            [90, 110, 160, 255],
            [10, 200, 30, 77],
        ] {
            let img = RgbaImage::from_pixel(64, 48, Rgba(c));
            let mut out = img.clone();
            enhance(&mut out, None, &EnhanceParams::default()).expect("enhances");
            assert_eq!(out, img, "{c:?}");
        }
        let mut empty = RgbaImage::new(0, 0);
        enhance(&mut empty, None, &EnhanceParams::default()).expect("empty is fine");
        // Fully transparent: nothing visible to measure.
        let clear = RgbaImage::from_fn(20, 20, |x, _| Rgba([x as u8 * 9, 0, 0, 0]));
        let mut out = clear.clone();
        enhance(&mut out, None, &EnhanceParams::default()).expect("enhances");
        assert_eq!(out, clear);
    }

    #[test]
    fn the_mask_picks_what_exposure_measures() {
        // Dark subject on the left, bright background on the right.
        let img = RgbaImage::from_fn(100, 60, |x, y| {
            let v = if x < 50 {
                25 + ((x + y) % 8) as u8
            } else {
                215 + ((x + y) % 8) as u8
            };
            Rgba([v, v, v, 255])
        });
        let mask = GrayImage::from_fn(100, 60, |x, _| Luma([if x < 50 { 255 } else { 0 }]));
        let params = EnhanceParams {
            sharpen: 0.0,
            ..EnhanceParams::default()
        };
        let mut with_mask = img.clone();
        enhance(&mut with_mask, Some(&mask), &params).expect("enhances");
        let mut without = img.clone();
        enhance(&mut without, None, &params).expect("enhances");
        let subject = |i: &RgbaImage| i.get_pixel(20, 30).0[0];
        assert!(
            subject(&with_mask) > subject(&img) + 20,
            "{}",
            subject(&with_mask)
        );
        assert!(
            subject(&with_mask) > subject(&without) + 15,
            "{} vs {}",
            subject(&with_mask),
            subject(&without)
        );

        // An empty mask falls back to all visible pixels.
        let mut empty = img.clone();
        enhance(&mut empty, Some(&GrayImage::new(100, 60)), &params).expect("enhances");
        assert_eq!(empty, without);

        let e = enhance(&mut img.clone(), Some(&GrayImage::new(10, 10)), &params)
            .expect_err("size mismatch");
        assert_eq!(e.code(), "internal");
    }

    #[test]
    fn sharpening_steepens_edges_and_spares_flat_areas() {
        let img = RgbaImage::from_fn(40, 20, |x, _| {
            let v = if x < 20 { 80 } else { 160 };
            Rgba([v, v, v, 255])
        });
        let params = EnhanceParams {
            exposure: false,
            white_balance: false,
            contrast: 0.0,
            ..EnhanceParams::default()
        };
        let mut out = img.clone();
        enhance(&mut out, None, &params).expect("enhances");
        // Undershoot just left of the edge, overshoot just right; far away untouched.
        assert!(
            out.get_pixel(19, 10).0[0] < 80,
            "{:?}",
            out.get_pixel(19, 10)
        );
        assert!(
            out.get_pixel(20, 10).0[0] > 160,
            "{:?}",
            out.get_pixel(20, 10)
        );
        assert_eq!(out.get_pixel(5, 10).0[0], 80);
        assert_eq!(out.get_pixel(35, 10).0[0], 160);
        // Mild: about 9 levels of overshoot on the 80-level step (0.4 × (24.7 − 3) by the
        // Gaussian's value half a pixel from the edge).
        let over = out.get_pixel(20, 10).0[0] - 160;
        assert!((7..=11).contains(&over), "{over}");
        let under = 80 - out.get_pixel(19, 10).0[0];
        assert!(under.abs_diff(over) <= 1, "{under} vs {over}");
    }

    #[test]
    fn transparent_neighbours_do_not_leak_into_sharpening() {
        // Opaque mid-grey next to transparent *white*: a plain blur would see a bright edge
        // and darken the grey beside it.
        let img = RgbaImage::from_fn(30, 10, |x, _| {
            if x < 15 {
                Rgba([120, 120, 120, 255])
            } else {
                Rgba([255, 255, 255, 0])
            }
        });
        let params = EnhanceParams {
            exposure: false,
            white_balance: false,
            contrast: 0.0,
            ..EnhanceParams::default()
        };
        let mut out = img.clone();
        enhance(&mut out, None, &params).expect("enhances");
        assert_eq!(out, img);
    }

    #[test]
    fn switched_off_it_does_nothing_and_on_it_is_deterministic() {
        let img = scene(90, 70, 10.0, 120.0);
        let off = EnhanceParams {
            exposure: false,
            white_balance: false,
            sharpen: 0.0,
            contrast: 0.0,
            ..EnhanceParams::default()
        };
        let mut out = img.clone();
        enhance(&mut out, None, &off).expect("enhances");
        assert_eq!(out, img);
        let (mut a, mut b) = (img.clone(), img.clone());
        enhance(&mut a, None, &EnhanceParams::default()).expect("enhances");
        enhance(&mut b, None, &EnhanceParams::default()).expect("enhances");
        assert_eq!(a, b);
    }

    #[test]
    fn nonsense_parameters_are_rejected() {
        let d = EnhanceParams::default();
        assert!(d.validate().is_ok());
        for bad in [
            EnhanceParams {
                exposure_target: 0.0,
                ..d
            },
            EnhanceParams {
                exposure_target: f32::NAN,
                ..d
            },
            EnhanceParams {
                max_white_balance_gain: 0.9,
                ..d
            },
            EnhanceParams { sharpen: -1.0, ..d },
            EnhanceParams {
                sharpen_sigma: 0.0,
                ..d
            },
            EnhanceParams {
                sharpen_sigma: 100.0,
                ..d
            },
            EnhanceParams { contrast: 1.5, ..d },
            EnhanceParams {
                max_brighten_ev: f32::INFINITY,
                ..d
            },
        ] {
            let e = enhance(&mut RgbaImage::new(2, 2), None, &bad).expect_err("rejected");
            assert_eq!(e.code(), "internal");
        }
    }

    #[test]
    fn roll_off_is_smooth_and_reaches_one_at_the_gain() {
        assert_eq!(roll_off(0.5, 3.0), 0.5);
        assert_eq!(roll_off(0.95, 1.0), 0.95);
        assert!((roll_off(3.0, 3.0) - 1.0).abs() < 1e-6);
        let samples: Vec<f32> = (0..=300).map(|i| roll_off(i as f32 / 100.0, 3.0)).collect();
        assert!(samples.windows(2).all(|w| w[1] > w[0]));
        // Barely above 1, barely any roll-off.
        assert!((roll_off(0.99, 1.001) - 0.99).abs() < 1e-3);
    }

    #[test]
    fn srgb_round_trips() {
        let decode = decode_lut();
        for v in 0..=255u8 {
            assert_eq!(to_u8(encode(decode[usize::from(v)]) * 255.0), v);
        }
        assert!(
            (decode[118] - 0.18).abs() < 0.002,
            "middle grey is sRGB 118"
        );
    }
}
