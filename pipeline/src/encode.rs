//! Encode stage: the composed portrait → PNG and JPEG bytes.
//!
//! The JPEG must fit a byte budget (Active Directory's `thumbnailPhoto` attribute holds at
//! most 100 KiB), so its quality is searched rather than fixed: the highest quality that
//! fits wins, and a clear error says when nothing in the allowed range does.

use facecraft_contract::ErrorCode;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageError, RgbImage, RgbaImage};

/// Budget and quality range for [`encode_jpeg_within`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegParams {
    /// Largest accepted output, in bytes. Default: 101 376 (99 KiB), the reference
    /// service's `jpeg_max_bytes`, which keeps photos under Active Directory's 100 KiB
    /// `thumbnailPhoto` limit.
    pub max_bytes: usize,
    /// Quality tried first and the best one returned. Default: 95; above that files grow
    /// quickly for no visible gain.
    pub max_quality: u8,
    /// Lowest quality accepted before giving up with `output_too_large`. Default: 30.
    /// Blocking starts to show on skin at full size around there, but directory photos are
    /// displayed far smaller than 648², and a failed job is worse than a softer thumbnail;
    /// an ordinary 648² portrait fits 99 KiB far above it anyway.
    pub min_quality: u8,
}

impl Default for JpegParams {
    fn default() -> Self {
        Self {
            max_bytes: 101_376,
            max_quality: 95,
            min_quality: 30,
        }
    }
}

impl JpegParams {
    /// Checks `1 ≤ min_quality ≤ max_quality ≤ 100` and a non-zero budget; call when a
    /// job's parameters are accepted.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.max_bytes == 0
            || self.min_quality == 0
            || self.max_quality > 100
            || self.min_quality > self.max_quality
        {
            return Err(EncodeError::InvalidParams(*self));
        }
        Ok(())
    }
}

/// A JPEG that fits its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedJpeg {
    /// The file.
    pub bytes: Vec<u8>,
    /// The quality it was encoded at (1–100).
    pub quality: u8,
    /// How many encodes the search took to find it (1 when `max_quality` fits).
    pub encodes: u8,
}

/// Errors of the encode stage.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Not even `min_quality` fits `max_bytes`.
    #[error("the JPEG needs {bytes_at_min_quality} bytes at quality {min_quality}, over the {max_bytes}-byte limit")]
    OutputTooLarge {
        /// The budget.
        max_bytes: usize,
        /// The lowest quality tried.
        min_quality: u8,
        /// The size at that quality.
        bytes_at_min_quality: usize,
    },
    /// [`JpegParams`] out of range.
    #[error("invalid JPEG parameters: qualities must satisfy 1 ≤ min ≤ max ≤ 100 and the byte limit must be positive ({0:?})")]
    InvalidParams(JpegParams),
    /// libwebp refused a lossy WebP (its sides are limited to 16 383).
    #[error("encoding the lossy WebP failed: libwebp reports {0}")]
    Webp(String),
    /// The codec failed (an empty or oversized image; JPEG sides are limited to 65 535).
    #[error("encoding the {format} failed")]
    Codec {
        /// `"png"` or `"jpeg"`.
        format: &'static str,
        /// What the codec reported.
        #[source]
        source: ImageError,
    },
}

impl EncodeError {
    /// Stable snake_case code for HTTP bodies and failed-job records (names from
    /// `facecraft_contract::error::ErrorCode`).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::OutputTooLarge { .. } => ErrorCode::OutputTooLarge,
            Self::InvalidParams(_) => ErrorCode::InvalidParams,
            // The composed canvas is ours, so a codec failure is our bug, not the request's.
            Self::Codec { .. } | Self::Webp(_) => ErrorCode::Internal,
        }
    }
}

/// The PNG's deflate setting, chosen by `cargo bench -p facecraft-pipeline --bench pipeline`
/// (section "encode", on the pipeline's own 648² portraits): level 1 took 3–9 ms where level
/// 6, the old default, took 24–43 ms, for files 8–26 % larger. `Fast` (fdeflate, 2.5 ms) wrote
/// the same size on three portraits but 79 % more on the fourth (a grey photo on the flat
/// background); level 3 matched level 6's size in 11–19 ms.
pub const PNG_COMPRESSION: CompressionType = CompressionType::Level(1);

/// Encodes a PNG: RGBA when `keep_alpha`, otherwise RGB with the alpha channel dropped.
///
/// Dropping alpha does not composite: pass an image that is already opaque (what
/// [`letterbox`](super::compose::letterbox) returns for a colour background), or
/// [`flatten`](super::compose::flatten) it first.
pub fn encode_png(img: &RgbaImage, keep_alpha: bool) -> Result<Vec<u8>, EncodeError> {
    let codec = |source| EncodeError::Codec {
        format: "png",
        source,
    };
    let mut out = Vec::new();
    // See PNG_COMPRESSION.
    let encoder = PngEncoder::new_with_quality(&mut out, PNG_COMPRESSION, FilterType::Adaptive);
    write_pixels(encoder, img, keep_alpha).map_err(codec)?;
    Ok(out)
}

/// Writes `img` through `encoder`: RGBA when `keep_alpha`, otherwise RGB with alpha dropped.
fn write_pixels(
    encoder: impl ImageEncoder,
    img: &RgbaImage,
    keep_alpha: bool,
) -> Result<(), ImageError> {
    if keep_alpha {
        return encoder.write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgba8,
        );
    }
    let rgb = rgb_bytes(img);
    encoder.write_image(&rgb, img.width(), img.height(), ExtendedColorType::Rgb8)
}

/// The RGB bytes of `img`, its alpha dropped (not blended: see [`encode_png`]).
fn rgb_bytes(img: &RgbaImage) -> Vec<u8> {
    img.as_raw()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// Encodes a WebP: RGBA when `keep_alpha`, otherwise RGB with the alpha channel dropped (as
/// [`encode_png`]). Lossless without a `quality` (image's pure-Rust encoder); with one (1–100),
/// lossy through libwebp (VP8, with a lossless alpha plane when `keep_alpha`).
pub fn encode_webp(
    img: &RgbaImage,
    keep_alpha: bool,
    quality: Option<u8>,
) -> Result<Vec<u8>, EncodeError> {
    if let Some(q) = quality {
        return encode_webp_lossy(img, keep_alpha, q);
    }
    let codec = |source| EncodeError::Codec {
        format: "webp",
        source,
    };
    let mut out = Vec::new();
    let encoder = WebPEncoder::new_lossless(&mut out);
    write_pixels(encoder, img, keep_alpha).map_err(codec)?;
    Ok(out)
}

fn encode_webp_lossy(
    img: &RgbaImage,
    keep_alpha: bool,
    quality: u8,
) -> Result<Vec<u8>, EncodeError> {
    if !(1..=100).contains(&quality) {
        return Err(EncodeError::Webp(format!("quality {quality} is not 1-100")));
    }
    let (w, h) = img.dimensions();
    let rgb;
    let encoder = if keep_alpha {
        webp::Encoder::from_rgba(img.as_raw(), w, h)
    } else {
        rgb = rgb_bytes(img);
        webp::Encoder::from_rgb(&rgb, w, h)
    };
    // encode_simple, not encode: the latter unwraps libwebp's error.
    let out = encoder
        .encode_simple(false, f32::from(quality))
        .map_err(|e| EncodeError::Webp(format!("{e:?}")))?;
    Ok(out.to_vec())
}

/// Encodes `img` as a baseline JPEG at the highest quality in
/// `params.min_quality..=params.max_quality` whose file fits `params.max_bytes`.
///
/// Tries `max_quality` first (most portraits fit at once). Otherwise it predicts the quality
/// from the sizes seen so far (see [`highest_fitting`]) and usually ends after two or three
/// more encodes, where a bisection needed up to seven. JPEG size grows with quality almost
/// everywhere but not strictly at every step; the search assumes it does, so at a rare
/// non-monotonic spot it may return a quality a step below the true highest fitting one —
/// never one that does not fit.
pub fn encode_jpeg_within(img: &RgbImage, params: &JpegParams) -> Result<EncodedJpeg, EncodeError> {
    params.validate()?;
    let encode = |quality: u8| encode_jpeg(img, quality);
    highest_fitting(params, encode)
}

/// Encodes `img` as a baseline JPEG at a fixed `quality` (1–100): full-resolution chroma
/// (4:4:4, at every quality, so size grows steadily with quality) and Huffman tables
/// optimised for the image, which makes files about a tenth smaller than the standard tables
/// for the same pixels.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, EncodeError> {
    let codec = |e: jpeg_encoder::EncodingError| EncodeError::Codec {
        format: "jpeg",
        source: ImageError::Encoding(image::error::EncodingError::new(
            image::error::ImageFormatHint::Exact(image::ImageFormat::Jpeg),
            e,
        )),
    };
    // JPEG sides are 16-bit.
    let side = |v: u32| {
        u16::try_from(v).map_err(|_| EncodeError::Codec {
            format: "jpeg",
            source: ImageError::Limits(image::error::LimitError::from_kind(
                image::error::LimitErrorKind::DimensionError,
            )),
        })
    };
    let (width, height) = (side(img.width())?, side(img.height())?);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_1_1);
    encoder.set_optimized_huffman_tables(true);
    encoder
        .encode(img.as_raw(), width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(codec)?;
    Ok(out)
}

/// The IJG quantisation scale of `quality` (libjpeg's `jpeg_quality_scaling`, which this
/// encoder follows): tables are the standard ones × scale / 100.
fn quant_scale(quality: f64) -> f64 {
    let q = quality.clamp(1.0, 100.0);
    if q < 50.0 {
        5000.0 / q
    } else {
        (200.0 - 2.0 * q).max(1.0)
    }
}

/// The inverse of [`quant_scale`], as a real number.
fn quality_of_scale(scale: f64) -> f64 {
    if scale > 100.0 {
        5000.0 / scale
    } else {
        (200.0 - scale) / 2.0
    }
}

/// How file size follows the quantisation scale before two sizes of this image are known:
/// size ∝ scale^−0.47, measured on portraits and photos (the exponent ranges about 0.4–0.6).
const SIZE_EXPONENT: f64 = -0.47;

/// The quality search, separate from the codec so it can be tested against any size curve.
///
/// JPEG size is close to a power of the quantisation scale, so ln(bytes) is nearly a straight
/// line in ln(scale): from the first size the line through it with a typical slope predicts the
/// quality at the budget; from two sizes the secant through them does. Each encode narrows
/// a bracket (`lo` fits, `hi` does not) and the guess is kept strictly inside it; after three
/// guesses that did not close it the search bisects, so it ends within ⌈log₂(range)⌉ + 4
/// encodes however strange the curve. It ends when `lo` and `hi` are neighbours.
fn highest_fitting(
    params: &JpegParams,
    mut encode: impl FnMut(u8) -> Result<Vec<u8>, EncodeError>,
) -> Result<EncodedJpeg, EncodeError> {
    let fits = |bytes: &Vec<u8>| bytes.len() <= params.max_bytes;
    let point = |q: u8, len: usize| (quant_scale(f64::from(q)).ln(), (len.max(1) as f64).ln());

    let top = encode(params.max_quality)?;
    if fits(&top) {
        return Ok(EncodedJpeg {
            bytes: top,
            quality: params.max_quality,
            encodes: 1,
        });
    }
    let target = (params.max_bytes as f64).ln();
    // (quality, (ln scale, ln bytes)) of the lowest quality known not to fit, and of the
    // highest known to fit with its file.
    let mut hi = (params.max_quality, point(params.max_quality, top.len()));
    let mut lo: Option<(u8, (f64, f64), Vec<u8>)> = None;
    // A second point above the bracket, for extrapolating while nothing fits yet.
    let mut above: Option<(f64, f64)> = None;
    let mut guesses: u8 = 0;
    loop {
        let floor = lo.as_ref().map_or(params.min_quality, |l| l.0 + 1);
        if floor >= hi.0 {
            break;
        }
        let (x_hi, y_hi) = hi.1;
        let x = match (&lo, above) {
            (Some((_, (x_lo, y_lo), _)), _) if (y_hi - y_lo).abs() > f64::EPSILON => {
                x_lo + (target - y_lo) * (x_hi - x_lo) / (y_hi - y_lo)
            }
            (None, Some((x_a, y_a))) if (y_a - y_hi).abs() > f64::EPSILON && y_a > y_hi => {
                x_hi + (target - y_hi) * (x_hi - x_a) / (y_hi - y_a)
            }
            _ => x_hi + (target - y_hi) / SIZE_EXPONENT,
        };
        let predicted = quality_of_scale(x.exp());
        let q = if guesses >= 3 || !predicted.is_finite() {
            floor + (hi.0 - floor) / 2 // bisect what is left
        } else {
            (predicted.floor().clamp(0.0, 100.0) as u8).clamp(floor, hi.0 - 1)
        };
        guesses += 1;
        let bytes = encode(q)?;
        if fits(&bytes) {
            lo = Some((q, point(q, bytes.len()), bytes));
        } else if q == params.min_quality {
            return Err(EncodeError::OutputTooLarge {
                max_bytes: params.max_bytes,
                min_quality: params.min_quality,
                bytes_at_min_quality: bytes.len(),
            });
        } else {
            above = Some(hi.1);
            hi = (q, point(q, bytes.len()));
        }
    }
    match lo {
        Some((quality, _, bytes)) => Ok(EncodedJpeg {
            bytes,
            quality,
            encodes: guesses + 1,
        }),
        // The bracket closed on min_quality without encoding it: only when min = max, and
        // max did not fit.
        None => Err(EncodeError::OutputTooLarge {
            max_bytes: params.max_bytes,
            min_quality: params.min_quality,
            bytes_at_min_quality: top.len(),
        }),
    }
}

/// `png` with its print resolution set to `dpi`: a `pHYs` chunk (pixels per metre, unit
/// metre) right after `IHDR`, where the format wants it (before the image data). `None` when
/// `png` does not start with a signature and an `IHDR` chunk.
pub fn png_with_dpi(png: &[u8], dpi: u32) -> Option<Vec<u8>> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    // Signature (8) + IHDR: length (4), type (4), 13 bytes of data, CRC (4).
    let ihdr_end = 8 + 4 + 4 + 13 + 4;
    if png.len() < ihdr_end || &png[..8] != SIGNATURE || &png[12..16] != b"IHDR" {
        return None;
    }
    let per_metre = (f64::from(dpi) / 0.0254).round() as u32;
    let mut body = Vec::with_capacity(13);
    body.extend_from_slice(b"pHYs");
    body.extend_from_slice(&per_metre.to_be_bytes());
    body.extend_from_slice(&per_metre.to_be_bytes());
    body.push(1);
    let mut out = Vec::with_capacity(png.len() + 21);
    out.extend_from_slice(&png[..ihdr_end]);
    out.extend_from_slice(&9u32.to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out.extend_from_slice(&png[ihdr_end..]);
    Some(out)
}

/// Sets the print resolution in a JPEG's JFIF header (`APP0` right after `SOI`, as the
/// encoder writes it) to `dpi`, in place: the file keeps its size, so a byte budget met
/// before still holds. `false` when there is no such header.
pub fn set_jpeg_dpi(jpeg: &mut [u8], dpi: u16) -> bool {
    // SOI, APP0 marker, length (2), "JFIF\0", version (2), units, X density, Y density.
    if jpeg.len() < 18 || jpeg[..4] != [0xFF, 0xD8, 0xFF, 0xE0] || &jpeg[6..11] != b"JFIF\0" {
        return false;
    }
    jpeg[13] = 1; // dots per inch
    jpeg[14..16].copy_from_slice(&dpi.to_be_bytes());
    jpeg[16..18].copy_from_slice(&dpi.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, Rgba};

    /// Deterministic xorshift32, so test images are the same on every run.
    struct Noise(u32);

    impl Noise {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }

        fn byte(&mut self) -> u8 {
            self.next().to_le_bytes()[0]
        }
    }

    /// A smooth gradient with `amplitude` levels of noise on top: like a grainy photo.
    fn grainy(width: u32, height: u32, amplitude: u8) -> RgbImage {
        let mut noise = Noise(0x1234_5678);
        RgbImage::from_fn(width, height, |x, y| {
            let base = [x * 200 / width + 20, y * 200 / height + 20, 128];
            Rgb(base.map(|b| {
                let n = i32::from(noise.byte() % (amplitude.max(1))) - i32::from(amplitude / 2);
                u8::try_from((i32::try_from(b).unwrap_or(0) + n).clamp(0, 255)).unwrap_or(0)
            }))
        })
    }

    fn decode_rgb(bytes: &[u8]) -> RgbImage {
        image::load_from_memory(bytes)
            .expect("output decodes")
            .to_rgb8()
    }

    #[test]
    fn lossy_webp_keeps_size_and_alpha_and_is_smaller_than_lossless() {
        let img = image::DynamicImage::ImageRgb8(crate::testdata::rgb("astronaut.png")).to_rgba8();
        let (w, h) = img.dimensions();
        let lossless = encode_webp(&img, false, None).unwrap();
        let lossy = encode_webp(&img, false, Some(80)).unwrap();
        let low = encode_webp(&img, false, Some(20)).unwrap();
        assert!(
            low.len() < lossy.len() && lossy.len() < lossless.len() / 2,
            "q20 {} q80 {} lossless {}",
            low.len(),
            lossy.len(),
            lossless.len()
        );
        let back = image::load_from_memory_with_format(&lossy, image::ImageFormat::WebP).unwrap();
        use image::GenericImageView;
        assert_eq!(back.dimensions(), (w, h));
        assert!(!back.color().has_alpha());
        // Lossy, yet the same picture: a mean error of a few levels at quality 80.
        let back = back.to_rgb8();
        let mae = img
            .pixels()
            .zip(back.pixels())
            .map(|(a, b)| (0..3).map(|c| u64::from(a[c].abs_diff(b[c]))).sum::<u64>())
            .sum::<u64>() as f64
            / f64::from(w * h * 3);
        assert!(mae > 0.0 && mae < 6.0, "mean absolute error {mae}");

        // With alpha: a transparent corner stays transparent, an opaque centre opaque.
        let mut cut = img.clone();
        for y in 0..h / 4 {
            for x in 0..w / 4 {
                cut.put_pixel(x, y, image::Rgba([0, 0, 0, 0]));
            }
        }
        let with_alpha = encode_webp(&cut, true, Some(80)).unwrap();
        let back = image::load_from_memory_with_format(&with_alpha, image::ImageFormat::WebP)
            .unwrap()
            .to_rgba8();
        assert_eq!(back.get_pixel(2, 2)[3], 0);
        assert_eq!(back.get_pixel(w / 2, h / 2)[3], 255);
    }

    #[test]
    fn lossy_webp_refuses_a_quality_out_of_range() {
        let img = RgbaImage::from_pixel(8, 8, image::Rgba([1, 2, 3, 255]));
        for q in [0, 101] {
            let e = encode_webp(&img, false, Some(q)).unwrap_err();
            assert!(matches!(e, EncodeError::Webp(_)), "{e}");
        }
    }

    #[test]
    fn webp_is_lossless_with_and_without_alpha() {
        let mut img = RgbaImage::from_fn(40, 30, |x, y| {
            image::Rgba([(x * 6) as u8, (y * 8) as u8, ((x + y) * 3) as u8, 255])
        });
        let opaque = encode_webp(&img, false, None).unwrap();
        let back = image::load_from_memory_with_format(&opaque, image::ImageFormat::WebP)
            .unwrap()
            .to_rgba8();
        assert_eq!(back, img, "lossless: the same pixels");
        img.put_pixel(3, 4, image::Rgba([1, 2, 3, 0]));
        let with_alpha = encode_webp(&img, true, None).unwrap();
        let back = image::load_from_memory_with_format(&with_alpha, image::ImageFormat::WebP)
            .unwrap()
            .to_rgba8();
        assert_eq!(back.get_pixel(3, 4)[3], 0, "alpha kept");
        assert_eq!(back.dimensions(), (40, 30));
    }

    #[test]
    fn defaults_are_documented_values() {
        let p = JpegParams::default();
        assert_eq!(p.max_bytes, 101_376);
        assert_eq!(p.max_quality, 95);
        assert_eq!(p.min_quality, 30);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn flat_image_gets_max_quality() {
        let img = RgbImage::from_pixel(648, 648, Rgb([240, 240, 240]));
        let jpeg = encode_jpeg_within(&img, &JpegParams::default()).expect("fits");
        assert_eq!(jpeg.quality, 95);
        assert!(jpeg.bytes.len() <= 101_376);
        let back = decode_rgb(&jpeg.bytes);
        assert_eq!(back.dimensions(), (648, 648));
        let p = back.get_pixel(300, 300).0;
        assert!(p.iter().all(|&c| c.abs_diff(240) <= 1), "{p:?}");
    }

    #[test]
    fn noisy_image_is_pushed_down_to_the_highest_quality_that_fits() {
        let img = grainy(648, 648, 48);
        let params = JpegParams::default();
        assert!(
            encode_jpeg(&img, 95).expect("encodes").len() > params.max_bytes,
            "test image must not fit at max quality"
        );
        let jpeg = encode_jpeg_within(&img, &params).expect("fits at some quality");
        assert!(jpeg.bytes.len() <= params.max_bytes);
        assert!((params.min_quality..params.max_quality).contains(&jpeg.quality));
        // Highest: one step up no longer fits.
        let above = encode_jpeg(&img, jpeg.quality + 1).expect("encodes");
        assert!(
            above.len() > params.max_bytes,
            "q{} fits too",
            jpeg.quality + 1
        );
        // The bytes returned are the ones for that quality, and they decode.
        assert_eq!(
            jpeg.bytes,
            encode_jpeg(&img, jpeg.quality).expect("encodes")
        );
        let back = decode_rgb(&jpeg.bytes);
        assert_eq!(back.dimensions(), (648, 648));
        // Content survives: the gradient's corners are where they were (noise averages out
        // over a block).
        let mean = |img: &RgbImage, x0: u32, y0: u32| -> f64 {
            let mut sum = 0.0;
            for y in y0..y0 + 16 {
                for x in x0..x0 + 16 {
                    sum += f64::from(img.get_pixel(x, y).0[0]);
                }
            }
            sum / 256.0
        };
        for (x, y) in [(0, 0), (632, 632)] {
            assert!((mean(&img, x, y) - mean(&back, x, y)).abs() < 6.0);
        }
    }

    #[test]
    fn real_photo_fits_the_active_directory_limit() {
        let photo = crate::testdata::rgb("astronaut.png");
        let photo =
            image::imageops::resize(&photo, 648, 648, image::imageops::FilterType::CatmullRom);
        let jpeg = encode_jpeg_within(&photo, &JpegParams::default()).expect("fits");
        assert!(jpeg.bytes.len() <= 101_376);
        assert!(jpeg.quality >= 60, "quality {}", jpeg.quality);
        assert_eq!(decode_rgb(&jpeg.bytes).dimensions(), (648, 648));
    }

    #[test]
    fn impossible_budget_is_output_too_large() {
        let img = grainy(648, 648, 48);
        let params = JpegParams {
            max_bytes: 500,
            ..JpegParams::default()
        };
        let e = encode_jpeg_within(&img, &params).expect_err("cannot fit 500 bytes");
        assert_eq!(e.code(), "output_too_large");
        match e {
            EncodeError::OutputTooLarge {
                max_bytes,
                min_quality,
                bytes_at_min_quality,
            } => {
                assert_eq!((max_bytes, min_quality), (500, 30));
                assert!(bytes_at_min_quality > 500);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn jpeg_size_grows_with_quality_on_a_photo_like_image() {
        // The search's premise, checked on this codec: sizes are non-decreasing over the
        // default range for a grainy image.
        let img = grainy(256, 256, 40);
        let p = JpegParams::default();
        let sizes: Vec<(u8, usize)> = (p.min_quality..=p.max_quality)
            .map(|q| (q, encode_jpeg(&img, q).expect("encodes").len()))
            .collect();
        for pair in sizes.windows(2) {
            assert!(pair[0].1 <= pair[1].1, "{pair:?}");
        }
    }

    #[test]
    fn search_matches_brute_force_on_the_real_codec() {
        // Every quality encoded once; the search then reads from that table, so all budgets
        // between neighbouring sizes can be tried without re-encoding.
        let img = grainy(256, 256, 40);
        let p = JpegParams::default();
        let files: Vec<(u8, Vec<u8>)> = (p.min_quality..=p.max_quality)
            .map(|q| (q, encode_jpeg(&img, q).expect("encodes")))
            .collect();
        let lookup = |q: u8| {
            files
                .iter()
                .find(|(fq, _)| *fq == q)
                .map(|(_, bytes)| bytes.clone())
                .ok_or(EncodeError::InvalidParams(p))
        };
        let mut budgets: Vec<usize> = files.iter().map(|(_, b)| b.len()).collect();
        budgets.extend(files.iter().map(|(_, b)| b.len() - 1));
        for max_bytes in budgets {
            let params = JpegParams { max_bytes, ..p };
            let want = files
                .iter()
                .filter(|(_, b)| b.len() <= max_bytes)
                .map(|(q, _)| *q)
                .max();
            match (highest_fitting(&params, lookup), want) {
                (Ok(jpeg), Some(q)) => assert_eq!(jpeg.quality, q, "budget {max_bytes}"),
                (Err(e), None) => assert_eq!(e.code(), "output_too_large"),
                (got, want) => panic!(
                    "budget {max_bytes}: got {:?}, want {want:?}",
                    got.map(|j| j.quality)
                ),
            }
        }
    }

    #[test]
    fn prediction_needs_few_encodes_on_photos() {
        // Budgets from a fifth to nine tenths of the top quality's size, on two real photos
        // at portrait size: the answer is brute force's, found in about three encodes where
        // bisection took seven or eight.
        let p = JpegParams::default();
        let (mut total_calls, mut searches) = (0, 0);
        for name in ["astronaut.png", "hopper.jpg"] {
            let photo = crate::testdata::rgb(name);
            let photo =
                image::imageops::resize(&photo, 648, 648, image::imageops::FilterType::Triangle);
            let sizes: Vec<(u8, usize)> = (p.min_quality..=p.max_quality)
                .map(|q| (q, encode_jpeg(&photo, q).expect("encodes").len()))
                .collect();
            let top = sizes.last().expect("qualities").1;
            for tenth in 2..=9 {
                let params = JpegParams {
                    max_bytes: top * tenth / 10,
                    ..p
                };
                let mut calls = 0;
                let got = highest_fitting(&params, |q| {
                    calls += 1;
                    Ok(vec![0; sizes[usize::from(q - p.min_quality)].1])
                });
                let want = sizes
                    .iter()
                    .filter(|(_, len)| *len <= params.max_bytes)
                    .map(|(q, _)| *q)
                    .max();
                assert_eq!(
                    got.ok().map(|j| j.quality),
                    want,
                    "{name}, budget {}",
                    params.max_bytes
                );
                total_calls += calls;
                searches += 1;
            }
        }
        let mean = f64::from(total_calls) / f64::from(searches);
        assert!(mean <= 4.0, "{mean:.2} encodes per search");
    }

    #[test]
    fn search_finds_the_boundary_on_every_monotonic_curve() {
        // Synthetic size curve: size(q) = 1000 + 10·q. For every budget, the answer must be
        // the largest q with size(q) ≤ budget, found within the promised number of encodes.
        for (min_quality, max_quality) in [(1, 100), (40, 95), (50, 51), (70, 70)] {
            for max_bytes in 900..=2100 {
                let params = JpegParams {
                    max_bytes,
                    max_quality,
                    min_quality,
                };
                let mut calls = 0;
                let result = highest_fitting(&params, |q| {
                    calls += 1;
                    Ok(vec![0; 1000 + 10 * usize::from(q)])
                });
                let want = (min_quality..=max_quality)
                    .rev()
                    .find(|&q| 1000 + 10 * usize::from(q) <= max_bytes);
                match (result, want) {
                    (Ok(jpeg), Some(q)) => {
                        assert_eq!(jpeg.quality, q);
                        assert_eq!(jpeg.bytes.len(), 1000 + 10 * usize::from(q));
                    }
                    (Err(e), None) => assert_eq!(e.code(), "output_too_large"),
                    (got, want) => panic!(
                        "budget {max_bytes}: got {:?}, want {want:?}",
                        got.map(|j| j.quality)
                    ),
                }
                // The first encode, three guesses, then bisection of what is left.
                let range = f64::from(max_quality - min_quality + 1);
                let bound = 4 + range.log2().ceil() as usize;
                assert!(
                    calls <= bound,
                    "{calls} encodes for {min_quality}..={max_quality}"
                );
            }
        }
    }

    #[test]
    fn search_never_returns_an_oversized_file_on_a_bumpy_curve() {
        // A non-monotonic curve (dips at every 7th quality): whatever is returned must fit.
        let size = |q: u8| 1000 + 10 * usize::from(q) - if q.is_multiple_of(7) { 25 } else { 0 };
        for max_bytes in 1000..=2000 {
            let params = JpegParams {
                max_bytes,
                max_quality: 95,
                min_quality: 10,
            };
            if let Ok(jpeg) = highest_fitting(&params, |q| Ok(vec![0; size(q)])) {
                assert!(jpeg.bytes.len() <= max_bytes);
                assert_eq!(jpeg.bytes.len(), size(jpeg.quality));
            }
        }
    }

    #[test]
    fn invalid_params_are_rejected() {
        for params in [
            JpegParams {
                max_bytes: 0,
                ..JpegParams::default()
            },
            JpegParams {
                min_quality: 0,
                ..JpegParams::default()
            },
            JpegParams {
                max_quality: 101,
                ..JpegParams::default()
            },
            JpegParams {
                min_quality: 90,
                max_quality: 80,
                ..JpegParams::default()
            },
        ] {
            let e = encode_jpeg_within(&RgbImage::new(8, 8), &params).expect_err("invalid");
            assert_eq!(e.code(), "invalid_params", "{params:?}");
        }
    }

    #[test]
    fn empty_image_is_an_internal_error() {
        let e = encode_jpeg_within(&RgbImage::new(0, 0), &JpegParams::default())
            .expect_err("nothing to encode");
        assert_eq!(e.code(), "internal");
    }

    #[test]
    fn png_with_alpha_round_trips_exactly() {
        let img = RgbaImage::from_fn(40, 30, |x, y| {
            Rgba([
                u8::try_from(x * 6).expect("u8"),
                u8::try_from(y * 8).expect("u8"),
                3,
                u8::try_from(x * 6 + 10).expect("u8"),
            ])
        });
        let png = encode_png(&img, true).expect("encodes");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(png[25], 6, "IHDR colour type 6 = RGBA");
        let back = image::load_from_memory(&png).expect("decodes");
        assert_eq!(back.color(), image::ColorType::Rgba8);
        assert_eq!(back.to_rgba8(), img);
    }

    #[test]
    fn png_without_alpha_is_rgb() {
        let img = RgbaImage::from_fn(40, 30, |x, _| {
            Rgba([u8::try_from(x).expect("u8"), 7, 9, 255])
        });
        let png = encode_png(&img, false).expect("encodes");
        assert_eq!(png[25], 2, "IHDR colour type 2 = RGB");
        let back = image::load_from_memory(&png).expect("decodes");
        assert_eq!(back.color(), image::ColorType::Rgb8);
        assert_eq!(back.to_rgb8().get_pixel(33, 5).0, [33, 7, 9]);
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(
            EncodeError::OutputTooLarge {
                max_bytes: 1,
                min_quality: 1,
                bytes_at_min_quality: 2
            }
            .code(),
            "output_too_large"
        );
        assert_eq!(
            EncodeError::InvalidParams(JpegParams::default()).code(),
            "invalid_params"
        );
        assert_eq!(
            EncodeError::Codec {
                format: "png",
                source: ImageError::IoError(std::io::ErrorKind::Other.into())
            }
            .code(),
            "internal"
        );
    }

    #[test]
    fn print_resolution_is_written_into_png_and_jpeg() {
        let img = RgbaImage::from_pixel(8, 8, image::Rgba([10, 20, 30, 255]));
        let png = encode_png(&img, false).unwrap();
        let with = png_with_dpi(&png, 300).unwrap();
        assert_eq!(with.len(), png.len() + 21);
        assert_eq!(&with[37..41], b"pHYs");
        // 300 dpi = 11811 px per metre, unit metre.
        assert_eq!(&with[41..45], &11811u32.to_be_bytes());
        assert_eq!(with[49], 1);
        assert_eq!(
            image::load_from_memory(&with).unwrap().width(),
            8,
            "still decodes"
        );
        assert!(png_with_dpi(b"not a png", 300).is_none());

        let rgb = image::RgbImage::from_pixel(8, 8, image::Rgb([10, 20, 30]));
        let mut jpeg = encode_jpeg(&rgb, 90).unwrap();
        let len = jpeg.len();
        assert!(set_jpeg_dpi(&mut jpeg, 300));
        assert_eq!(jpeg.len(), len);
        assert_eq!((jpeg[13], &jpeg[14..18]), (1, &[1, 44, 1, 44][..]));
        assert_eq!(image::load_from_memory(&jpeg).unwrap().height(), 8);
        assert!(!set_jpeg_dpi(&mut [0u8; 4], 300));
    }
}
