//! Decode stage: untrusted upload bytes → upright RGBA8 pixels.
//!
//! This is the pipeline's only contact with raw user input, so it enforces every size limit
//! *before* pixel memory is allocated, applies the EXIF orientation (phones store most
//! portraits sideways and rely on that tag), and reduces every supported layout (grey, 16-bit,
//! palette, CMYK, animation) to one pixel format for the stages after it.

use facecraft_contract::ErrorCode;
use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbaImage};

use super::jpeg_scan::{self, Verdict};

/// Limits applied while decoding an upload.
///
/// The defaults accept any photo a phone or camera produces today (a 200 MP sensor is
/// 16 320 × 12 240, but such files are far over `max_bytes` anyway) while keeping one
/// decode under roughly 0.5 GiB of memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeParams {
    /// Largest accepted input, in bytes. Default: 20 MiB (`20 * 1024 * 1024`).
    pub max_bytes: usize,
    /// Largest accepted `width × height`. Default: 40 000 000 (40 MP), which is
    /// 160 MB as RGBA8 and 320 MB while a 16-bit RGBA source is being converted.
    pub max_pixels: u64,
    /// Largest accepted width or height, in pixels. Default: 12 000. Guards against
    /// degenerate strips (e.g. 60 000 × 600) that pass the pixel limit but make
    /// resizing and detection pathologically slow.
    pub max_dimension: u32,
    /// Smallest accepted width or height, in pixels. Default: 32. Below this there is no
    /// face to find; rejecting early gives a clearer error than `no_face_detected`.
    pub min_dimension: u32,
}

impl Default for DecodeParams {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            max_pixels: 40_000_000,
            max_dimension: 12_000,
            min_dimension: 32,
        }
    }
}

/// A decoded, upright image.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Pixels after the EXIF orientation was applied, 8 bits per channel, straight alpha.
    pub image: RgbaImage,
    /// Container format as a lowercase name: `"jpeg"`, `"png"`, `"webp"`, `"gif"`, `"bmp"`,
    /// `"tiff"`.
    pub format: &'static str,
    /// The EXIF orientation that was applied (1–8; 1 means none, which is also what images
    /// without EXIF report). 5–8 swap width and height.
    pub orientation: u8,
    /// Width as stored in the file, before orientation.
    pub original_width: u32,
    /// Height as stored in the file, before orientation.
    pub original_height: u32,
    /// Whether any pixel is less than fully opaque (a cut-out PNG, a GIF with a
    /// transparent colour). Formats that merely *can* carry alpha but do not use it
    /// report `false`.
    pub has_transparency: bool,
}

/// Why an upload could not be decoded. Several variants share a [`code`](Self::code): the code
/// is the stable contract, the variant and message say what exactly was wrong.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Zero bytes were uploaded.
    #[error("the input is empty")]
    Empty,
    /// The bytes do not start with the signature of any image format we know.
    #[error("the input is not an image in a supported format (JPEG, PNG, WebP, GIF, BMP, TIFF)")]
    UnknownFormat,
    /// A recognised image format that this build cannot decode (HEIC, AVIF, ...).
    #[error("{format} images are not supported; convert to JPEG or PNG")]
    UnsupportedFormat {
        /// Name of the recognised format.
        format: &'static str,
    },
    /// A supported format using a feature its codec lacks (arithmetic-coded or 12-bit JPEG,
    /// an unusual TIFF compression, ...).
    #[error("this {format} image uses a feature that cannot be decoded")]
    UnsupportedFeature {
        /// Container format, as in [`Decoded::format`].
        format: &'static str,
        /// What the codec reported.
        #[source]
        source: image::error::UnsupportedError,
    },
    /// The header was readable but the image data is damaged or cut short.
    #[error("the {format} image is corrupt or truncated")]
    Corrupt {
        /// Container format, as in [`Decoded::format`].
        format: &'static str,
        /// What the codec reported.
        #[source]
        source: ImageError,
    },
    /// The upload is larger than [`DecodeParams::max_bytes`].
    #[error("the input is {bytes} bytes; the limit is {max} bytes")]
    TooManyBytes {
        /// Size of the upload.
        bytes: usize,
        /// The configured limit.
        max: usize,
    },
    /// The header announces more pixels, or a longer side, than allowed.
    #[error("the image is {width}×{height} pixels; the limit is {max_pixels} pixels and {max_dimension} pixels per side")]
    TooLarge {
        /// Width announced by the header.
        width: u32,
        /// Height announced by the header.
        height: u32,
        /// The configured pixel limit.
        max_pixels: u64,
        /// The configured side limit.
        max_dimension: u32,
    },
    /// The codec needed more working memory than the limit derived from
    /// [`DecodeParams::max_pixels`] (a file whose frames or chunks claim more than its header).
    #[error("decoding the {format} image would need more memory than allowed")]
    OverMemoryLimit {
        /// Container format, as in [`Decoded::format`].
        format: &'static str,
        /// What the codec reported.
        #[source]
        source: image::error::LimitError,
    },
    /// The image is too small to hold a face.
    #[error("the image is {width}×{height} pixels; each side must be at least {min} pixels")]
    TooSmall {
        /// Width announced by the header.
        width: u32,
        /// Height announced by the header.
        height: u32,
        /// The configured minimum.
        min: u32,
    },
}

impl DecodeError {
    /// Stable snake_case code for HTTP bodies and failed-job records (names from
    /// `facecraft_contract::error::ErrorCode`).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Empty
            | Self::UnknownFormat
            | Self::UnsupportedFormat { .. }
            | Self::UnsupportedFeature { .. } => ErrorCode::UnsupportedFormat,
            // Truncated and damaged files are reported as `unsupported_format` too: for the
            // client the remedy is the same (send a readable image), and one code keeps the
            // contract small. The message says "corrupt or truncated".
            Self::Corrupt { .. } => ErrorCode::UnsupportedFormat,
            Self::TooManyBytes { .. } | Self::TooLarge { .. } | Self::OverMemoryLimit { .. } => {
                ErrorCode::ImageTooLarge
            }
            Self::TooSmall { .. } => ErrorCode::ImageTooSmall,
        }
    }
}

/// Decodes `bytes` into upright RGBA8 pixels, enforcing `params`.
///
/// Order of checks: empty input, byte size, format signature, header dimensions (pixel
/// count, longest side, shortest side) — all before any pixel buffer is allocated — and only
/// then the pixel data. Animated GIF and WebP yield their first frame. JPEG files whose scans
/// stop before their last block, or whose data ends before the end-of-image marker, are
/// rejected as truncated ([`jpeg_scan`]), because the JPEG codec would otherwise silently
/// fill the missing rows.
pub fn decode(bytes: &[u8], params: &DecodeParams) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > params.max_bytes {
        return Err(DecodeError::TooManyBytes {
            bytes: bytes.len(),
            max: params.max_bytes,
        });
    }

    // Sniffing reads 16 bytes from memory; its I/O error cannot really happen.
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Corrupt {
            format: "unknown",
            source: ImageError::IoError(e),
        })?;
    let Some(image_format) = reader.format() else {
        return Err(match sniff_unsupported(bytes) {
            Some(format) => DecodeError::UnsupportedFormat { format },
            None => DecodeError::UnknownFormat,
        });
    };
    let format = format_name(image_format);
    if !image_format.reading_enabled() {
        return Err(DecodeError::UnsupportedFormat { format });
    }

    // Constructing the decoder parses only the header (the JPEG codec also copies the input,
    // which `max_bytes` bounds). The dimension limits go to the codec only after our own
    // check, so that an oversized header is reported with its dimensions; the codec then
    // re-checks them, and its allocation cap covers codecs that size buffers from per-frame
    // headers (GIF) rather than from the dimensions checked here.
    let mut limits = codec_limits(params);
    let (max_width, max_height) = (
        limits.max_image_width.take(),
        limits.max_image_height.take(),
    );
    reader.limits(limits.clone());
    let mut decoder = reader.into_decoder().map_err(|e| codec_error(e, format))?;

    let (width, height) = match decoder.dimensions() {
        (w, h) if image_format == ImageFormat::WebP && (w == 0 || h == 0) => {
            webp_lossless_dimensions(bytes).unwrap_or((w, h))
        }
        dimensions => dimensions,
    };
    check_dimensions(width, height, params)?;
    if (width, height) != decoder.dimensions() {
        // Within the limits, yet the codec would decode it with the sides it misread.
        return Err(DecodeError::Corrupt {
            format,
            source: ImageError::IoError(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the WebP codec misreads this lossless header (a side of 16384)",
            )),
        });
    }
    limits.max_image_width = max_width;
    limits.max_image_height = max_height;
    decoder
        .set_limits(limits)
        .map_err(|e| codec_error(e, format))?;

    if image_format == ImageFormat::Jpeg {
        match jpeg_scan::check(bytes) {
            Ok(Verdict::Complete) => {}
            Ok(Verdict::NotWalked(why)) => {
                tracing::debug!(why, "JPEG scans not walked; its end marker is present");
            }
            Err(e) => {
                return Err(DecodeError::Corrupt {
                    format,
                    source: ImageError::IoError(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        e,
                    )),
                })
            }
        }
    }

    // A malformed EXIF block must not cost the user their upload: fall back to "as stored",
    // which is what browsers do too.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);

    let mut dynamic = DynamicImage::from_decoder(decoder).map_err(|e| codec_error(e, format))?;
    dynamic.apply_orientation(orientation);

    // `to_rgba8` scales 16-bit and float samples to 8 bits and expands grey, palette and
    // missing alpha; converting once here means no later stage handles more than one layout.
    let image = match dynamic {
        DynamicImage::ImageRgba8(rgba) => rgba,
        other => other.to_rgba8(),
    };
    let has_transparency = image.pixels().any(|p| p.0[3] != u8::MAX);

    Ok(Decoded {
        image,
        format,
        orientation: orientation.to_exif(),
        original_width: width,
        original_height: height,
        has_transparency,
    })
}

/// Checks header dimensions against `params` (before any pixels are decoded).
fn check_dimensions(width: u32, height: u32, params: &DecodeParams) -> Result<(), DecodeError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > params.max_pixels || width > params.max_dimension || height > params.max_dimension {
        return Err(DecodeError::TooLarge {
            width,
            height,
            max_pixels: params.max_pixels,
            max_dimension: params.max_dimension,
        });
    }
    if width < params.min_dimension || height < params.min_dimension {
        return Err(DecodeError::TooSmall {
            width,
            height,
            min: params.min_dimension,
        });
    }
    Ok(())
}

/// Maps a codec error that is not about size to our error.
fn codec_error(error: ImageError, format: &'static str) -> DecodeError {
    match error {
        ImageError::Unsupported(source) => DecodeError::UnsupportedFeature { format, source },
        // Dimensions are checked before the codec sees them, so this is its allocation cap.
        ImageError::Limits(source) => DecodeError::OverMemoryLimit { format, source },
        source => DecodeError::Corrupt { format, source },
    }
}

/// Limits for the codec, derived from `params`.
fn codec_limits(params: &DecodeParams) -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(params.max_dimension);
    limits.max_image_height = Some(params.max_dimension);
    // 8 bytes per pixel is the largest layout we accept (16-bit RGBA); 64 MiB more leaves
    // room for codec working buffers (JPEG component planes, PNG scanlines).
    limits.max_alloc = Some(
        params
            .max_pixels
            .saturating_mul(8)
            .saturating_add(64 * 1024 * 1024),
    );
    limits
}

/// Lowercase name of a container format, for [`Decoded::format`] and error messages.
fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::WebP => "webp",
        ImageFormat::Gif => "gif",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Tiff => "tiff",
        ImageFormat::Avif => "avif",
        other => other.extensions_str().first().copied().unwrap_or("unknown"),
    }
}

/// Sides from a simple lossless WebP's header (WebP lossless bitstream §2: signature 0x2F,
/// then 14 bits width − 1 and 14 bits height − 1, little-endian).
///
/// image-webp 0.2.4 computes a side as `(1 + bits) & 0x3FFF`, so the format's largest side,
/// 16384, comes out as 0 and such a file would be reported too *small*; decode asks this
/// function when the codec reports a zero side.
fn webp_lossless_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"VP8L" || *bytes.get(20)? != 0x2F {
        return None;
    }
    let bits = u32::from_le_bytes(bytes.get(21..25)?.try_into().ok()?);
    Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
}

/// Names formats that `image` does not even recognise but users commonly upload, so the
/// error can say what to do instead of "not an image".
fn sniff_unsupported(bytes: &[u8]) -> Option<&'static str> {
    // ISO-BMFF: 4-byte box size, then `ftyp` and the major brand (ISO/IEC 14496-12 §4.3).
    // iPhones save HEIC by default, so this is the case worth a clear message.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => {
                Some("heic")
            }
            b"avif" | b"avis" => Some("avif"),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::gif::GifEncoder;
    use image::codecs::jpeg::JpegEncoder;
    use image::codecs::png::PngEncoder;
    use image::codecs::webp::WebPEncoder;
    use image::{
        Delay, ExtendedColorType, Frame, GrayImage, ImageBuffer, ImageEncoder, Luma, Rgb, RgbImage,
        Rgba,
    };

    // ---------- helpers: building inputs by hand ----------

    fn encode_with(
        img: &DynamicImage,
        write: impl FnOnce(&mut Vec<u8>, &DynamicImage) -> image::ImageResult<()>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, img).expect("test encoder failed");
        out
    }

    fn png_bytes(img: &DynamicImage) -> Vec<u8> {
        encode_with(img, |out, img| {
            PngEncoder::new(out).write_image(
                img.as_bytes(),
                img.width(),
                img.height(),
                img.color().into(),
            )
        })
    }

    fn jpeg_bytes(img: &DynamicImage, quality: u8) -> Vec<u8> {
        encode_with(img, |out, img| {
            JpegEncoder::new_with_quality(out, quality).encode_image(img)
        })
    }

    /// CRC-32 of the concatenated `chunks`, as PNG needs it (ISO 3309).
    fn crc32(chunks: &[&[u8]]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        chunks.iter().for_each(|c| h.update(c));
        h.finalize()
    }

    fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        let len = u32::try_from(data.len()).expect("chunk too long");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
    }

    /// zlib stream made of stored (uncompressed) deflate blocks (RFC 1950/1951).
    fn zlib_stored(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x78, 0x01];
        let blocks: Vec<&[u8]> = data.chunks(65_535).collect();
        for (i, block) in blocks.iter().enumerate() {
            out.push(u8::from(i + 1 == blocks.len()));
            let len = u16::try_from(block.len()).expect("block too long");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(block);
        }
        let (mut a, mut b) = (1u32, 0u32);
        for byte in data {
            a = (a + u32::from(*byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        out.extend_from_slice(&((b << 16) | a).to_be_bytes());
        out
    }

    /// An 8-bit palette PNG with a tRNS chunk; `index(x, y)` picks the palette entry.
    fn palette_png(
        width: u32,
        height: u32,
        palette: &[[u8; 4]],
        index: impl Fn(u32, u32) -> u8,
    ) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 3, 0, 0, 0]); // depth 8, colour type 3 (palette)
        png_chunk(&mut out, b"IHDR", &ihdr);
        let plte: Vec<u8> = palette.iter().flat_map(|c| [c[0], c[1], c[2]]).collect();
        png_chunk(&mut out, b"PLTE", &plte);
        let trns: Vec<u8> = palette.iter().map(|c| c[3]).collect();
        png_chunk(&mut out, b"tRNS", &trns);
        let mut raw = Vec::new();
        for y in 0..height {
            raw.push(0); // filter type: none
            raw.extend((0..width).map(|x| index(x, y)));
        }
        png_chunk(&mut out, b"IDAT", &zlib_stored(&raw));
        png_chunk(&mut out, b"IEND", &[]);
        out
    }

    /// Big-endian TIFF block holding one IFD0 entry: Orientation (tag 0x0112, SHORT).
    fn exif_tiff(orientation: u16) -> Vec<u8> {
        let mut tiff = b"MM\x00\x2A\x00\x00\x00\x08".to_vec();
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes());
        tiff.extend_from_slice(&3u16.to_be_bytes()); // type SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes()); // count
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]); // value padding to 4 bytes
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        tiff
    }

    /// Inserts an EXIF APP1 segment right after SOI, where cameras put it.
    fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut payload = b"Exif\x00\x00".to_vec();
        payload.extend_from_slice(&exif_tiff(orientation));
        let len = u16::try_from(payload.len() + 2).expect("segment too long");
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    /// Position of the SOF0 segment's height field in a baseline JPEG.
    fn sof0_dims_offset(jpeg: &[u8]) -> usize {
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("no SOF0 marker");
        sof + 5 // marker (2) + length (2) + precision (1)
    }

    /// A minimal baseline JPEG with four components and an Adobe APP14 segment saying
    /// "CMYK, no transform", as Photoshop writes it (inverted: 255 = no ink). Every 8×8
    /// block is flat, so only DC coefficients are coded; `block(bx, by)` gives its
    /// stored C, M, Y, K values.
    fn cmyk_jpeg(width: u16, height: u16, block: impl Fn(u16, u16) -> [u8; 4]) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        let segment = |out: &mut Vec<u8>, marker: u8, data: &[u8]| {
            out.extend_from_slice(&[0xFF, marker]);
            let len = u16::try_from(data.len() + 2).expect("segment too long");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(data);
        };
        // APP14 "Adobe": version 100, flags0, flags1, transform 0 (CMYK).
        segment(&mut out, 0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00");
        // DQT: table 0, all ones, so a DC coefficient is stored unquantised.
        let mut dqt = vec![0u8];
        dqt.extend_from_slice(&[1; 64]);
        segment(&mut out, 0xDB, &dqt);
        // SOF0: 8-bit, four components with ids 1–4, no subsampling, table 0.
        let mut sof = vec![8];
        sof.extend_from_slice(&height.to_be_bytes());
        sof.extend_from_slice(&width.to_be_bytes());
        sof.push(4);
        for id in 1..=4 {
            sof.extend_from_slice(&[id, 0x11, 0]);
        }
        segment(&mut out, 0xC0, &sof);
        // DHT DC table 0: categories 0–11, all 4-bit codes, so category c has code c.
        let mut dht = vec![0x00, 0, 0, 0, 12];
        dht.extend_from_slice(&[0; 12]);
        dht.extend(0..12u8);
        segment(&mut out, 0xC4, &dht);
        // DHT AC table 0: only EOB (0x00), code `0`.
        let mut dht = vec![0x10, 1];
        dht.extend_from_slice(&[0; 15]);
        dht.push(0x00);
        segment(&mut out, 0xC4, &dht);
        // SOS: four components, each with DC/AC table 0, full spectrum.
        let mut sos = vec![4];
        for id in 1..=4 {
            sos.extend_from_slice(&[id, 0x00]);
        }
        sos.extend_from_slice(&[0, 63, 0]);
        segment(&mut out, 0xDA, &sos);

        let mut bits = BitWriter::default();
        let mut previous = [0i32; 4];
        for by in 0..height.div_ceil(8) {
            for bx in 0..width.div_ceil(8) {
                let values = block(bx, by);
                for (c, value) in values.iter().enumerate() {
                    // A flat block of value v has DC = 8 (v − 128) (level shift, DCT scale).
                    let dc = (i32::from(*value) - 128) * 8;
                    let diff = dc - previous[c];
                    previous[c] = dc;
                    let category = 32 - diff.unsigned_abs().leading_zeros();
                    bits.put(category, 4);
                    // Negative differences are coded as diff − 1 in `category` bits (§F.1.2.1).
                    let extra = if diff < 0 { diff - 1 } else { diff };
                    let mask = (1u32 << category) - 1;
                    bits.put(u32::from_ne_bytes(extra.to_ne_bytes()) & mask, category);
                    bits.put(0, 1); // EOB
                }
            }
        }
        out.extend_from_slice(&bits.finish());
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    #[derive(Default)]
    struct BitWriter {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }

    impl BitWriter {
        fn put(&mut self, value: u32, count: u32) {
            for i in (0..count).rev() {
                self.acc = (self.acc << 1) | ((value >> i) & 1);
                self.n += 1;
                if self.n == 8 {
                    self.flush_byte();
                }
            }
        }

        fn flush_byte(&mut self) {
            let byte = u8::try_from(self.acc & 0xFF).expect("masked");
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0x00); // byte stuffing
            }
            self.acc = 0;
            self.n = 0;
        }

        fn finish(mut self) -> Vec<u8> {
            while self.n != 0 {
                self.put(1, 1); // pad with ones
            }
            self.out
        }
    }

    fn params() -> DecodeParams {
        DecodeParams::default()
    }

    fn assert_code(result: Result<Decoded, DecodeError>, code: &str) -> DecodeError {
        match result {
            Ok(d) => panic!(
                "expected {code}, got a {}×{} image",
                d.image.width(),
                d.image.height()
            ),
            Err(e) => {
                assert_eq!(e.code(), code, "unexpected error: {e}");
                e
            }
        }
    }

    fn close(a: Rgba<u8>, b: [u8; 4], tolerance: u8) -> bool {
        a.0.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tolerance)
    }

    use crate::testdata::bytes as testdata;

    // ---------- defaults and rejections ----------

    #[test]
    fn defaults_match_the_documented_values() {
        let p = DecodeParams::default();
        assert_eq!(p.max_bytes, 20_971_520);
        assert_eq!(p.max_pixels, 40_000_000);
        assert_eq!(p.max_dimension, 12_000);
        assert_eq!(p.min_dimension, 32);
    }

    #[test]
    fn empty_input_is_unsupported_format() {
        let e = assert_code(decode(&[], &params()), "unsupported_format");
        assert!(matches!(e, DecodeError::Empty));
    }

    #[test]
    fn text_and_random_bytes_are_unsupported_format() {
        for bytes in [
            b"hello, this is not an image at all".to_vec(),
            b"%PDF-1.7\n".to_vec(),
            (0..4096u32)
                .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).expect("u8"))
                .collect(),
        ] {
            let e = assert_code(decode(&bytes, &params()), "unsupported_format");
            assert!(matches!(e, DecodeError::UnknownFormat), "{e:?}");
        }
    }

    #[test]
    fn heic_and_avif_are_named_in_the_error() {
        let mut heic = vec![0, 0, 0, 24];
        heic.extend_from_slice(b"ftypheic\x00\x00\x00\x00mif1heic");
        let e = assert_code(decode(&heic, &params()), "unsupported_format");
        assert!(
            matches!(e, DecodeError::UnsupportedFormat { format: "heic" }),
            "{e:?}"
        );
        assert!(e.to_string().contains("heic"));

        let mut avif = vec![0, 0, 0, 28];
        avif.extend_from_slice(b"ftypavif\x00\x00\x00\x00avifmif1miaf");
        let e = assert_code(decode(&avif, &params()), "unsupported_format");
        assert!(
            matches!(e, DecodeError::UnsupportedFormat { format: "avif" }),
            "{e:?}"
        );
    }

    #[test]
    fn input_over_the_byte_limit_is_too_large() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, Rgb([10, 20, 30])));
        let png = png_bytes(&img);
        let p = DecodeParams {
            max_bytes: png.len() - 1,
            ..params()
        };
        let e = assert_code(decode(&png, &p), "image_too_large");
        assert!(matches!(e, DecodeError::TooManyBytes { .. }), "{e:?}");
        // Exactly at the limit is fine.
        let p = DecodeParams {
            max_bytes: png.len(),
            ..params()
        };
        assert!(decode(&png, &p).is_ok());
    }

    #[test]
    fn png_pixel_bomb_is_rejected_from_its_header() {
        // A valid 64×64 PNG whose IHDR is rewritten to 60 000 × 60 000 (3.6 GP) with a
        // matching CRC. Decoding it would need 14 GB; the header check must stop it first.
        let img = DynamicImage::ImageLuma8(GrayImage::from_pixel(64, 64, Luma([0])));
        let mut png = png_bytes(&img);
        png[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let crc = crc32(&[&png[12..29]]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = assert_code(decode(&png, &params()), "image_too_large");
        assert!(
            matches!(
                e,
                DecodeError::TooLarge {
                    width: 60_000,
                    height: 60_000,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn jpeg_pixel_bomb_is_rejected_from_its_header() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, Rgb([1, 2, 3])));
        let mut jpeg = jpeg_bytes(&img, 90);
        let at = sof0_dims_offset(&jpeg);
        jpeg[at..at + 2].copy_from_slice(&65_000u16.to_be_bytes());
        jpeg[at + 2..at + 4].copy_from_slice(&65_000u16.to_be_bytes());
        let e = assert_code(decode(&jpeg, &params()), "image_too_large");
        assert!(
            matches!(
                e,
                DecodeError::TooLarge {
                    width: 65_000,
                    height: 65_000,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn gif_pixel_bomb_is_rejected_from_its_header() {
        let frame = Frame::new(RgbaImage::from_pixel(40, 40, Rgba([9, 9, 9, 255])));
        let mut gif = Vec::new();
        GifEncoder::new(&mut gif)
            .encode_frame(frame)
            .expect("gif encode");
        // Logical screen size lives at bytes 6..10, little-endian, no checksum.
        gif[6..8].copy_from_slice(&65_535u16.to_le_bytes());
        gif[8..10].copy_from_slice(&65_535u16.to_le_bytes());
        assert_code(decode(&gif, &params()), "image_too_large");
    }

    #[test]
    fn gif_frame_larger_than_its_screen_hits_the_memory_limit() {
        // The logical screen is small and passes the header check, but the frame descriptor
        // claims 65 535 × 65 535: only the codec's allocation limit can catch this one.
        let frame = Frame::new(RgbaImage::from_pixel(40, 40, Rgba([9, 9, 9, 255])));
        let mut gif = Vec::new();
        GifEncoder::new(&mut gif)
            .encode_frame(frame)
            .expect("gif encode");
        // Walk the blocks (GIF89a spec): header 6, screen descriptor 7, global colour
        // table if flagged, then extensions (0x21 label, sub-blocks) until 0x2C.
        let mut pos = 13;
        if gif[10] & 0x80 != 0 {
            pos += 3 << ((gif[10] & 0x07) + 1);
        }
        while gif[pos] == 0x21 {
            pos += 2;
            while gif[pos] != 0 {
                pos += usize::from(gif[pos]) + 1;
            }
            pos += 1;
        }
        assert_eq!(gif[pos], 0x2C, "image descriptor");
        gif[pos + 5..pos + 7].copy_from_slice(&65_535u16.to_le_bytes());
        gif[pos + 7..pos + 9].copy_from_slice(&65_535u16.to_le_bytes());
        let e = assert_code(decode(&gif, &params()), "image_too_large");
        assert!(matches!(e, DecodeError::OverMemoryLimit { .. }), "{e:?}");
    }

    #[test]
    fn long_strip_is_rejected_by_the_side_limit() {
        // 12 001 × 40 is only 480 kP, under the pixel limit, but over the side limit.
        let img = DynamicImage::ImageLuma8(GrayImage::from_pixel(12_001, 40, Luma([7])));
        let e = assert_code(decode(&png_bytes(&img), &params()), "image_too_large");
        assert!(matches!(e, DecodeError::TooLarge { width: 12_001, .. }));
    }

    #[test]
    fn pixel_limit_is_configurable() {
        let img = DynamicImage::ImageLuma8(GrayImage::from_pixel(100, 100, Luma([7])));
        let png = png_bytes(&img);
        let p = DecodeParams {
            max_pixels: 9_999,
            ..params()
        };
        assert_code(decode(&png, &p), "image_too_large");
        let p = DecodeParams {
            max_pixels: 10_000,
            ..params()
        };
        assert!(decode(&png, &p).is_ok());
    }

    #[test]
    fn tiny_images_are_too_small() {
        for (w, h) in [(31, 400), (400, 31), (1, 1)] {
            let img = DynamicImage::ImageRgb8(RgbImage::new(w, h));
            let e = assert_code(decode(&png_bytes(&img), &params()), "image_too_small");
            let DecodeError::TooSmall { width, height, min } = e else {
                panic!("unexpected {e:?}");
            };
            assert_eq!((width, height, min), (w, h, 32));
        }
        let img = DynamicImage::ImageRgb8(RgbImage::new(32, 32));
        assert!(decode(&png_bytes(&img), &params()).is_ok());
    }

    #[test]
    fn truncated_png_is_unsupported_format_saying_corrupt() {
        let img = DynamicImage::ImageRgb8(ImageBuffer::from_fn(64, 64, |x, y| {
            Rgb([
                u8::try_from(x * 4).expect("u8"),
                u8::try_from(y * 4).expect("u8"),
                9,
            ])
        }));
        let png = png_bytes(&img);
        for cut in [png.len() / 2, png.len() - 20, 40] {
            let e = assert_code(decode(&png[..cut], &params()), "unsupported_format");
            assert!(
                matches!(e, DecodeError::Corrupt { format: "png", .. }),
                "cut at {cut}: {e:?}"
            );
            assert!(e.to_string().contains("corrupt or truncated"));
        }
    }

    #[test]
    fn truncated_jpeg_is_unsupported_format_instead_of_grey_rows() {
        let photo = decode(&testdata("astronaut.png"), &params()).expect("astronaut decodes");
        let rgb = DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(photo.image).to_rgb8());
        let jpeg = jpeg_bytes(&rgb, 90);
        for cut in [jpeg.len() / 2, jpeg.len() - 2, 700] {
            let e = assert_code(decode(&jpeg[..cut], &params()), "unsupported_format");
            assert!(
                matches!(e, DecodeError::Corrupt { format: "jpeg", .. }),
                "cut at {cut}: {e:?}"
            );
        }
        // The untouched file, and one with trailing bytes after EOI (common from some
        // cameras and upload tools), still decode.
        assert!(decode(&jpeg, &params()).is_ok());
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0; 100]);
        assert!(decode(&padded, &params()).is_ok());
    }

    #[test]
    fn truncated_webp_and_gif_are_unsupported_format() {
        let img = RgbaImage::from_fn(64, 64, |x, y| {
            Rgba([
                u8::try_from(x * 4).expect("u8"),
                u8::try_from(y * 4).expect("u8"),
                u8::try_from((x * y) % 251).expect("u8"),
                255,
            ])
        });
        let mut webp = Vec::new();
        WebPEncoder::new_lossless(&mut webp)
            .encode(img.as_raw(), 64, 64, ExtendedColorType::Rgba8)
            .expect("webp encode");
        let e = assert_code(
            decode(&webp[..webp.len() / 2], &params()),
            "unsupported_format",
        );
        assert!(
            matches!(e, DecodeError::Corrupt { format: "webp", .. }),
            "{e:?}"
        );

        let mut gif = Vec::new();
        GifEncoder::new(&mut gif)
            .encode_frame(Frame::new(img))
            .expect("gif encode");
        let e = assert_code(
            decode(&gif[..gif.len() / 2], &params()),
            "unsupported_format",
        );
        assert!(
            matches!(e, DecodeError::Corrupt { format: "gif", .. }),
            "{e:?}"
        );
    }

    #[test]
    fn jpeg_end_marker_in_an_exif_thumbnail_does_not_hide_truncation() {
        // An APP1 segment that contains FF D9 (as an embedded thumbnail would) ahead of
        // the real image data, which is then cut short.
        let img = DynamicImage::ImageRgb8(ImageBuffer::from_fn(64, 64, |x, y| {
            Rgb([
                u8::try_from(x * 3).expect("u8"),
                u8::try_from(y * 3).expect("u8"),
                0,
            ])
        }));
        let jpeg = jpeg_bytes(&img, 90);
        let mut with_thumb = jpeg[..2].to_vec();
        with_thumb.extend_from_slice(&[0xFF, 0xE1, 0x00, 0x0A]);
        with_thumb.extend_from_slice(b"Exif\x00\x00\xFF\xD9");
        with_thumb.extend_from_slice(&jpeg[2..]);
        assert!(decode(&with_thumb, &params()).is_ok());
        let cut = with_thumb.len() - 40;
        assert_code(decode(&with_thumb[..cut], &params()), "unsupported_format");
    }

    #[test]
    fn lossless_webp_sides_of_16384_are_read_from_the_header() {
        let header = |w: u32, h: u32| {
            let mut webp = b"RIFF\0\0\0\0WEBPVP8L\x20\0\0\0\x2f".to_vec();
            webp.extend_from_slice(&((w - 1) | ((h - 1) << 14)).to_le_bytes());
            webp.extend_from_slice(&[0x5A; 27]);
            let riff_len = u32::try_from(webp.len() - 8).expect("u32");
            webp[4..8].copy_from_slice(&riff_len.to_le_bytes());
            webp
        };
        assert_eq!(
            webp_lossless_dimensions(&header(16_384, 100)),
            Some((16_384, 100))
        );
        assert_eq!(
            webp_lossless_dimensions(&header(1, 16_384)),
            Some((1, 16_384))
        );
        assert_eq!(webp_lossless_dimensions(b"RIFF\0\0\0\0WEBPVP8 "), None);
        assert_code(
            decode(&header(16_384, 16_384), &params()),
            "image_too_large",
        );
        // Allowed by generous limits, the codec's misreading still must not decode.
        let generous = DecodeParams {
            max_dimension: 20_000,
            max_pixels: 400_000_000,
            ..params()
        };
        let e = assert_code(decode(&header(16_384, 64), &generous), "unsupported_format");
        assert!(
            matches!(e, DecodeError::Corrupt { format: "webp", .. }),
            "{e:?}"
        );
    }

    #[test]
    fn garbage_after_a_valid_signature_is_unsupported_format() {
        let mut fake_png = b"\x89PNG\r\n\x1a\n".to_vec();
        fake_png.extend_from_slice(&[0x55; 200]);
        let e = assert_code(decode(&fake_png, &params()), "unsupported_format");
        assert!(matches!(e, DecodeError::Corrupt { format: "png", .. }));

        let mut fake_jpeg = vec![0xFF, 0xD8, 0xFF];
        fake_jpeg.extend_from_slice(&[0x00; 200]);
        assert_code(decode(&fake_jpeg, &params()), "unsupported_format");
    }

    // ---------- EXIF orientation ----------

    #[test]
    fn all_eight_exif_orientations_come_out_upright() {
        // Stored image: 96×48 with coloured 16×16 markers in three corners. The table says,
        // per EXIF orientation, where each stored corner must appear once displayed
        // (CIPA DC-008 Exif 2.32, tag 0x0112: where the 0th row and 0th column go).
        const RED: [u8; 4] = [230, 20, 20, 255];
        const GREEN: [u8; 4] = [20, 230, 20, 255];
        const BLUE: [u8; 4] = [20, 20, 230, 255];
        let (w, h) = (96u32, 48u32);
        let stored = RgbImage::from_fn(w, h, |x, y| {
            let pick = |c: [u8; 4]| Rgb([c[0], c[1], c[2]]);
            match (x < 16, x >= w - 16, y < 16, y >= h - 16) {
                (true, _, true, _) => pick(RED),   // top-left
                (_, true, true, _) => pick(GREEN), // top-right
                (true, _, _, true) => pick(BLUE),  // bottom-left
                _ => Rgb([128, 128, 128]),
            }
        });
        let jpeg = jpeg_bytes(&DynamicImage::ImageRgb8(stored), 95);

        #[derive(Clone, Copy, Debug)]
        enum Corner {
            TopLeft,
            TopRight,
            BottomLeft,
            BottomRight,
        }
        use Corner::*;
        // (orientation, where stored top-left, top-right, bottom-left end up)
        let table = [
            (1, TopLeft, TopRight, BottomLeft),
            (2, TopRight, TopLeft, BottomRight),
            (3, BottomRight, BottomLeft, TopRight),
            (4, BottomLeft, BottomRight, TopLeft),
            (5, TopLeft, BottomLeft, TopRight),
            (6, TopRight, BottomRight, TopLeft),
            (7, BottomRight, TopRight, BottomLeft),
            (8, BottomLeft, TopLeft, BottomRight),
        ];
        for (orientation, red_at, green_at, blue_at) in table {
            let decoded = decode(&with_exif_orientation(&jpeg, orientation), &params())
                .unwrap_or_else(|e| panic!("orientation {orientation}: {e}"));
            assert_eq!(decoded.orientation, u8::try_from(orientation).expect("u8"));
            assert_eq!((decoded.original_width, decoded.original_height), (w, h));
            let (dw, dh) = if orientation >= 5 { (h, w) } else { (w, h) };
            assert_eq!(
                decoded.image.dimensions(),
                (dw, dh),
                "orientation {orientation}"
            );
            let sample = |corner: Corner| {
                let (x, y) = match corner {
                    TopLeft => (8, 8),
                    TopRight => (dw - 9, 8),
                    BottomLeft => (8, dh - 9),
                    BottomRight => (dw - 9, dh - 9),
                };
                *decoded.image.get_pixel(x, y)
            };
            for (colour, corner) in [(RED, red_at), (GREEN, green_at), (BLUE, blue_at)] {
                let got = sample(corner);
                assert!(
                    close(got, colour, 40),
                    "orientation {orientation}: expected {colour:?} at {corner:?}, got {got:?}"
                );
            }
        }
    }

    #[test]
    fn invalid_exif_orientation_is_ignored() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(80, 40, Rgb([50, 60, 70])));
        let jpeg = with_exif_orientation(&jpeg_bytes(&img, 90), 9);
        let decoded = decode(&jpeg, &params()).expect("decodes");
        assert_eq!(decoded.orientation, 1);
        assert_eq!(decoded.image.dimensions(), (80, 40));
    }

    #[test]
    fn png_exif_orientation_is_applied_too() {
        // PNG carries EXIF in an eXIf chunk (PNG 1.5 extension); insert it after IHDR.
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(64, 32, |x, _| {
            if x < 8 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 0])
            }
        }));
        let png = png_bytes(&img);
        let mut with_exif = png[..33].to_vec(); // signature + IHDR
        png_chunk(&mut with_exif, b"eXIf", &exif_tiff(6));
        with_exif.extend_from_slice(&png[33..]);
        let decoded = decode(&with_exif, &params()).expect("decodes");
        assert_eq!(decoded.orientation, 6);
        assert_eq!(decoded.image.dimensions(), (32, 64));
        // Orientation 6 rotates 90° clockwise: the red left edge becomes the top edge.
        assert_eq!(decoded.image.get_pixel(16, 2).0, [255, 0, 0, 255]);
        assert_eq!(decoded.image.get_pixel(16, 60).0, [0, 0, 0, 255]);
    }

    // ---------- pixel layouts ----------

    #[test]
    fn rgb_png_round_trips_exactly() {
        let img = RgbImage::from_fn(40, 36, |x, y| {
            Rgb([
                u8::try_from(x * 6).expect("u8"),
                u8::try_from(y * 7).expect("u8"),
                u8::try_from((x + y) % 256).expect("u8"),
            ])
        });
        let decoded =
            decode(&png_bytes(&DynamicImage::ImageRgb8(img.clone())), &params()).expect("png");
        assert_eq!(decoded.format, "png");
        assert_eq!(decoded.orientation, 1);
        assert!(!decoded.has_transparency);
        for (x, y, p) in img.enumerate_pixels() {
            assert_eq!(decoded.image.get_pixel(x, y).0, [p[0], p[1], p[2], 255]);
        }
    }

    #[test]
    fn grayscale_png_and_jpeg_expand_to_rgb() {
        let gray = GrayImage::from_fn(48, 48, |x, _| Luma([u8::try_from(x * 5).expect("u8")]));
        let decoded = decode(
            &png_bytes(&DynamicImage::ImageLuma8(gray.clone())),
            &params(),
        )
        .expect("png");
        assert_eq!(decoded.image.get_pixel(10, 3).0, [50, 50, 50, 255]);

        let decoded =
            decode(&jpeg_bytes(&DynamicImage::ImageLuma8(gray), 95), &params()).expect("jpeg");
        assert_eq!(decoded.format, "jpeg");
        let p = decoded.image.get_pixel(20, 20).0;
        assert_eq!(p[0], p[1]);
        assert_eq!(p[1], p[2]);
        assert!(p[0].abs_diff(100) <= 4, "{p:?}");
    }

    #[test]
    fn real_photos_decode() {
        let astronaut = decode(&testdata("astronaut.png"), &params()).expect("astronaut");
        assert_eq!(astronaut.image.dimensions(), (512, 512));
        assert_eq!(astronaut.format, "png");
        assert!(!astronaut.has_transparency);
        // A colour photo: some pixel has clearly different channels.
        assert!(astronaut.image.pixels().any(|p| p[0].abs_diff(p[2]) > 60));

        let camera = decode(&testdata("camera.png"), &params()).expect("camera");
        assert_eq!(camera.image.dimensions(), (512, 512));
        assert!(camera.image.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn sixteen_bit_png_scales_to_eight_bits() {
        let img: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(40, 40, |x, _| {
            if x < 20 {
                Rgb([0xFFFF, 0x8080, 0x0000])
            } else {
                Rgb([0x1234, 0x0101, 0xFEFF])
            }
        });
        let decoded = decode(&png_bytes(&DynamicImage::ImageRgb16(img)), &params()).expect("png");
        assert_eq!(decoded.image.get_pixel(0, 0).0, [255, 128, 0, 255]);
        // 0x1234 / 257 = 18.13 → 18; 0x0101 / 257 = 1; 0xFEFF / 257 = 254.0
        assert_eq!(decoded.image.get_pixel(30, 0).0, [18, 1, 254, 255]);
    }

    #[test]
    fn sixteen_bit_png_with_alpha_keeps_alpha() {
        let img: ImageBuffer<Rgba<u16>, Vec<u16>> =
            ImageBuffer::from_pixel(32, 32, Rgba([0xFFFF, 0, 0, 0x8000]));
        let decoded = decode(&png_bytes(&DynamicImage::ImageRgba16(img)), &params()).expect("png");
        assert_eq!(decoded.image.get_pixel(5, 5).0, [255, 0, 0, 128]);
        assert!(decoded.has_transparency);
    }

    #[test]
    fn palette_png_with_transparency_expands_to_rgba() {
        let palette = [
            [255, 0, 0, 255], // opaque red
            [0, 0, 255, 0],   // fully transparent blue
            [0, 255, 0, 128], // half-transparent green
        ];
        let png = palette_png(
            48,
            32,
            &palette,
            |x, y| {
                if y < 16 {
                    u8::from(x >= 24)
                } else {
                    2
                }
            },
        );
        let decoded = decode(&png, &params()).expect("palette png");
        assert_eq!(decoded.image.dimensions(), (48, 32));
        assert!(decoded.has_transparency);
        assert_eq!(decoded.image.get_pixel(3, 3).0, [255, 0, 0, 255]);
        assert_eq!(decoded.image.get_pixel(40, 3).0, [0, 0, 255, 0]);
        assert_eq!(decoded.image.get_pixel(10, 20).0, [0, 255, 0, 128]);
    }

    #[test]
    fn adobe_cmyk_jpeg_converts_to_rgb() {
        // 32×32, four 16×16 quadrants. Adobe CMYK is stored inverted (255 = no ink), and
        // zune-jpeg converts with R = C·K/255 etc., which matches that convention.
        let jpeg = cmyk_jpeg(32, 32, |bx, by| match (bx < 2, by < 2) {
            (true, true) => [255, 255, 255, 255], // no ink: white
            (false, true) => [0, 255, 255, 255],  // full cyan
            (true, false) => [255, 255, 255, 0],  // full black
            (false, false) => [255, 0, 255, 128], // full magenta at half black
        });
        let decoded = decode(&jpeg, &params()).expect("cmyk jpeg");
        assert_eq!(decoded.format, "jpeg");
        assert_eq!(decoded.image.dimensions(), (32, 32));
        let expectations = [
            ((4, 4), [255, 255, 255, 255]),
            ((28, 4), [0, 255, 255, 255]),
            ((4, 28), [0, 0, 0, 255]),
            ((28, 28), [128, 0, 128, 255]),
        ];
        for ((x, y), want) in expectations {
            let got = *decoded.image.get_pixel(x, y);
            assert!(
                close(got, want, 2),
                "at ({x},{y}): want {want:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn animated_gif_yields_its_first_frame() {
        let mut gif = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut gif);
            let delay = Delay::from_numer_denom_ms(100, 1);
            for colour in [[200, 30, 30, 255], [30, 30, 200, 255]] {
                let frame =
                    Frame::from_parts(RgbaImage::from_pixel(40, 40, Rgba(colour)), 0, 0, delay);
                encoder.encode_frame(frame).expect("gif frame");
            }
        }
        let decoded = decode(&gif, &params()).expect("gif");
        assert_eq!(decoded.format, "gif");
        assert_eq!(decoded.image.dimensions(), (40, 40));
        // GIF quantises to a palette; a flat colour survives closely.
        let got = *decoded.image.get_pixel(20, 20);
        assert!(close(got, [200, 30, 30, 255], 8), "{got:?}");
        assert!(!decoded.has_transparency);
    }

    #[test]
    fn lossless_webp_round_trips_exactly_with_alpha() {
        let img = RgbaImage::from_fn(40, 40, |x, y| {
            Rgba([
                u8::try_from(x * 6).expect("u8"),
                u8::try_from(y * 6).expect("u8"),
                77,
                if x < 20 { 255 } else { 90 },
            ])
        });
        let mut webp = Vec::new();
        WebPEncoder::new_lossless(&mut webp)
            .encode(img.as_raw(), 40, 40, ExtendedColorType::Rgba8)
            .expect("webp encode");
        let decoded = decode(&webp, &params()).expect("webp");
        assert_eq!(decoded.format, "webp");
        assert!(decoded.has_transparency);
        assert_eq!(decoded.image, img);
    }

    #[test]
    fn animated_webp_yields_its_first_frame() {
        // Build an animated WebP by hand from two lossless still frames: RIFF/WEBP with
        // VP8X (animation flag), ANIM and one ANMF per frame (WebP container spec).
        fn vp8l_chunk(colour: [u8; 3]) -> Vec<u8> {
            let img = RgbImage::from_pixel(40, 40, Rgb(colour));
            let mut webp = Vec::new();
            WebPEncoder::new_lossless(&mut webp)
                .encode(img.as_raw(), 40, 40, ExtendedColorType::Rgb8)
                .expect("webp encode");
            assert_eq!(
                &webp[12..16],
                b"VP8L",
                "encoder writes a simple lossless file"
            );
            webp[12..].to_vec()
        }
        fn riff_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend_from_slice(kind);
            out.extend_from_slice(&u32::try_from(data.len()).expect("u32").to_le_bytes());
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(0);
            }
        }
        let u24 = |v: u32| v.to_le_bytes()[..3].to_vec();
        let mut body = b"WEBP".to_vec();
        let mut vp8x = vec![0x02, 0, 0, 0]; // animation flag
        vp8x.extend(u24(39));
        vp8x.extend(u24(39));
        riff_chunk(&mut body, b"VP8X", &vp8x);
        riff_chunk(&mut body, b"ANIM", &[0, 0, 0, 0, 0, 0]); // background, loop forever
        for colour in [[10, 200, 10], [200, 10, 10]] {
            let mut anmf = Vec::new();
            anmf.extend(u24(0)); // x / 2
            anmf.extend(u24(0)); // y / 2
            anmf.extend(u24(39)); // width − 1
            anmf.extend(u24(39)); // height − 1
            anmf.extend(u24(100)); // duration, ms
            anmf.push(0); // alpha-blend onto the canvas, no disposal: what encoders write
            anmf.extend(vp8l_chunk(colour));
            riff_chunk(&mut body, b"ANMF", &anmf);
        }
        let mut webp = Vec::new();
        riff_chunk(&mut webp, b"RIFF", &body);

        let decoded = decode(&webp, &params()).expect("animated webp");
        assert_eq!(decoded.format, "webp");
        assert_eq!(decoded.image.dimensions(), (40, 40));
        // image-webp's alpha blending of an opaque frame onto the canvas loses one level
        // (10 → 9, 200 → 199), hence the tolerance; without blending it is exact.
        let got = *decoded.image.get_pixel(20, 20);
        assert!(close(got, [10, 200, 10, 255], 1), "{got:?}");
    }

    #[test]
    fn bmp_and_tiff_decode() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(33, 35, Rgb([1, 2, 3])));
        for (format, name) in [(ImageFormat::Bmp, "bmp"), (ImageFormat::Tiff, "tiff")] {
            let mut bytes = Cursor::new(Vec::new());
            img.write_to(&mut bytes, format).expect("encode");
            let decoded = decode(bytes.get_ref(), &params()).expect(name);
            assert_eq!(decoded.format, name);
            assert_eq!(decoded.image.dimensions(), (33, 35));
            assert_eq!(decoded.image.get_pixel(32, 34).0, [1, 2, 3, 255]);
        }
    }

    #[test]
    fn error_codes_are_stable() {
        let cases: [(DecodeError, &str); 8] = [
            (DecodeError::Empty, "unsupported_format"),
            (DecodeError::UnknownFormat, "unsupported_format"),
            (
                DecodeError::UnsupportedFormat { format: "heic" },
                "unsupported_format",
            ),
            (
                DecodeError::Corrupt {
                    format: "png",
                    source: ImageError::IoError(std::io::ErrorKind::UnexpectedEof.into()),
                },
                "unsupported_format",
            ),
            (
                DecodeError::TooManyBytes { bytes: 2, max: 1 },
                "image_too_large",
            ),
            (
                DecodeError::TooLarge {
                    width: 1,
                    height: 1,
                    max_pixels: 0,
                    max_dimension: 0,
                },
                "image_too_large",
            ),
            (
                DecodeError::OverMemoryLimit {
                    format: "gif",
                    source: image::error::LimitError::from_kind(
                        image::error::LimitErrorKind::InsufficientMemory,
                    ),
                },
                "image_too_large",
            ),
            (
                DecodeError::TooSmall {
                    width: 1,
                    height: 1,
                    min: 2,
                },
                "image_too_small",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
    }
}
