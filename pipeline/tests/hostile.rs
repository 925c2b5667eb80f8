//! Hostile and broken input at the pipeline level: bytes → `render` → one exact stable code, or
//! a portrait of the right face. Every input is generated here (no binary files in git); each
//! test names the kind of input it covers and why it ends with its code.
//!
//! Successes run with [`quick`] parameters (no segmentation, tiny output): what matters here is
//! what gets *in*, and the detector is already the costly part. Inputs that fail before
//! detection cost microseconds; the few that reach "no face" are kept small, because that path
//! tries every detector (the CNN included) and four turned copies before giving up.
//!
//! At the end, property tests feed mutated and truncated files to `decode` and random parameter
//! objects to `JobParams`, and check that nothing panics and every answer is a documented one.
#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;

use facecraft_shared::job::{FaceBox, FacePolicy, Format, JobParams};
use facecraft_worker::engines::{EngineSettings, Engines};
use facecraft_worker::pipeline::decode::{decode, DecodeParams};
use facecraft_worker::portrait::{render, Portrait};
use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::{
    imageops, DynamicImage, Frame, GrayImage, ImageFormat, Luma, LumaA, Rgb, RgbImage, Rgba,
    RgbaImage,
};

// ---------------------------------------------------------------------------------------------
// Running the pipeline
// ---------------------------------------------------------------------------------------------

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata")
        .join(name)
}

fn engines() -> &'static Engines {
    static ENGINES: OnceLock<Engines> = OnceLock::new();
    ENGINES.get_or_init(|| {
        Engines::load(&EngineSettings::from_env_for_tests())
            .unwrap_or_else(|e| panic!("loading models (run scripts/fetch-models): {e:#}"))
    })
}

/// The shared test photo: one frontal face, about 90 px wide, in a 512×512 frame.
fn astronaut() -> &'static RgbaImage {
    static IMG: OnceLock<RgbaImage> = OnceLock::new();
    IMG.get_or_init(|| image::open(testdata("astronaut.png")).unwrap().to_rgba8())
}

fn astronaut_rgb() -> RgbImage {
    DynamicImage::ImageRgba8(astronaut().clone()).to_rgb8()
}

/// Parameters that skip what follows detection and costs time (segmentation, enhancement,
/// a large output), so a success here costs little more than the detector.
fn quick() -> JobParams {
    JobParams {
        width: 96,
        height: 96,
        remove_background: false,
        enhance: false,
        oval_mask: false,
        formats: vec![Format::Png],
        ..JobParams::default()
    }
}

fn render_with(bytes: &[u8], params: &JobParams) -> Result<Portrait, (String, String)> {
    render(
        bytes,
        params,
        &DecodeParams::default(),
        engines(),
        &mut |_| true,
    )
    .map_err(|e| (e.code().as_str().to_owned(), e.to_string()))
}

/// Asserts that `bytes` fail with exactly `code`.
#[track_caller]
fn expect_code(what: &str, bytes: &[u8], params: &JobParams, code: &str) {
    match render_with(bytes, params) {
        Ok(p) => panic!(
            "{what}: expected `{code}`, got a portrait (face {:?})",
            p.face
        ),
        Err((got, message)) => assert_eq!(got, code, "{what}: {message}"),
    }
}

/// Asserts that `bytes` become a portrait: a decodable PNG of the requested size.
#[track_caller]
fn expect_portrait(what: &str, bytes: &[u8], params: &JobParams) -> Portrait {
    match render_with(bytes, params) {
        Err((code, message)) => panic!("{what}: expected a portrait, got `{code}`: {message}"),
        Ok(p) => {
            let png = p
                .outputs
                .iter()
                .find(|o| o.format == Format::Png)
                .unwrap_or_else(|| panic!("{what}: no PNG output"));
            let img = image::load_from_memory(&png.bytes).unwrap();
            assert_eq!(
                (img.width(), img.height()),
                (params.width, params.height),
                "{what}: output size"
            );
            p
        }
    }
}

/// The face the pipeline finds on the plain astronaut PNG: what every re-encoding of the same
/// photo must find again.
fn reference_face() -> FaceBox {
    static FACE: OnceLock<FaceBox> = OnceLock::new();
    *FACE.get_or_init(|| {
        let p = expect_portrait("reference", &png(astronaut()), &quick());
        let face = p.face.unwrap();
        assert_eq!(face.faces_found, 1);
        face.bbox
    })
}

/// Asserts one face, centred where the reference face is (± `tolerance` px) and of about
/// its size. Sizes vary more than centres: a re-encoded photo can be found by another
/// detector of the chain, whose boxes are drawn differently (dlib's are tighter).
#[track_caller]
fn assert_reference_face(what: &str, p: &Portrait, tolerance: f32) {
    let face = p.face.as_ref().unwrap();
    assert_eq!(face.faces_found, 1, "{what}: faces found");
    let (got, want) = (face.bbox, reference_face());
    let centre = |b: FaceBox| (b.x + b.width / 2.0, b.y + b.height / 2.0);
    let ((gx, gy), (wx, wy)) = (centre(got), centre(want));
    assert!(
        (gx - wx).abs() <= tolerance && (gy - wy).abs() <= tolerance,
        "{what}: face centre ({gx}, {gy}) vs reference ({wx}, {wy}): {got:?} vs {want:?}"
    );
    let ratio = got.width / want.width;
    assert!(
        (0.75..=1.33).contains(&ratio),
        "{what}: face width {} vs reference {}",
        got.width,
        want.width
    );
}

// ---------------------------------------------------------------------------------------------
// Building inputs
// ---------------------------------------------------------------------------------------------

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn png(img: &RgbaImage) -> Vec<u8> {
    encode(&DynamicImage::ImageRgba8(img.clone()), ImageFormat::Png)
}

fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&DynamicImage::ImageRgb8(img.clone()))
        .unwrap();
    out
}

/// A small deterministic byte generator (xorshift64*), so "random" inputs are the same on
/// every run.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }
}

/// CRC-32 as PNG and ZIP use it (ISO 3309, reflected, polynomial 0xEDB88320).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}

/// A PNG from its parts: IHDR fields, the zlib stream of the filtered rows, extra chunks
/// placed before IDAT.
fn png_file(
    width: u32,
    height: u32,
    depth: u8,
    colour: u8,
    extra: &[(&[u8; 4], Vec<u8>)],
    zlib: &[u8],
) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[depth, colour, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    for (kind, data) in extra {
        png_chunk(&mut out, kind, data);
    }
    png_chunk(&mut out, b"IDAT", zlib);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// zlib stream of stored (uncompressed) deflate blocks (RFC 1950/1951).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = u16::try_from(block.len()).unwrap();
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

/// Deflate output, least significant bit first (RFC 1951 §3.1.1).
#[derive(Default)]
struct DeflateBits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl DeflateBits {
    fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// Huffman codes are packed starting with their most significant bit.
    fn put_code(&mut self, code: u32, len: u32) {
        let reversed = (0..len).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
        self.put(reversed, len);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A zlib stream inflating to `len` zero bytes, ~13 bits per 258 bytes: one fixed-Huffman block
/// of a literal 0 followed by length-258, distance-1 copies. The stuff decompression bombs are
/// made of.
fn zlib_zeros(len: usize) -> Vec<u8> {
    let mut bits = DeflateBits::default();
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE 01: fixed Huffman codes
    let mut left = len;
    if left > 0 {
        bits.put_code(0x30, 8); // literal 0
        left -= 1;
    }
    while left >= 258 {
        bits.put_code(0xC5, 8); // length code 285: 258 bytes, no extra bits
        bits.put_code(0, 5); // distance code 0: distance 1
        left -= 258;
    }
    for _ in 0..left {
        bits.put_code(0x30, 8);
    }
    bits.put_code(0, 7); // end of block (256)
    let mut out = vec![0x78, 0x01];
    out.extend(bits.finish());
    // Adler-32 of zeros: `a` stays 1, `b` gains 1 per byte.
    let adler = ((u32::try_from(len % 65_521).unwrap()) << 16) | 1;
    out.extend_from_slice(&adler.to_be_bytes());
    out
}

/// A well-formed black 1-bit greyscale PNG of `w`×`h`, compressed as tightly as zeros go.
fn black_bilevel_png(w: u32, h: u32) -> Vec<u8> {
    let row = 1 + (w as usize).div_ceil(8);
    png_file(w, h, 1, 0, &[], &zlib_zeros(row * h as usize))
}

/// A valid small PNG whose IHDR then claims `w`×`h` (CRC fixed): the header of a bomb without
/// the body.
fn png_header_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = png(&RgbaImage::from_pixel(40, 40, Rgba([9, 9, 9, 255])));
    out[16..20].copy_from_slice(&w.to_be_bytes());
    out[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out
}

/// An 8-bit palette PNG with a tRNS chunk: `palette` entries are RGBA.
fn palette_png(w: u32, h: u32, palette: &[[u8; 4]], index: impl Fn(u32, u32) -> u8) -> Vec<u8> {
    let plte: Vec<u8> = palette.iter().flat_map(|c| [c[0], c[1], c[2]]).collect();
    let trns: Vec<u8> = palette.iter().map(|c| c[3]).collect();
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0); // filter: none
        raw.extend((0..w).map(|x| index(x, y)));
    }
    png_file(
        w,
        h,
        8,
        3,
        &[(b"PLTE", plte), (b"tRNS", trns)],
        &zlib_stored(&raw),
    )
}

fn jpeg_segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&u16::try_from(body.len() + 2).unwrap().to_be_bytes());
    out.extend_from_slice(body);
}

/// A copy of `jpeg` with an APP1 segment holding `payload` right after SOI, where cameras put
/// EXIF.
fn with_app1(jpeg: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    jpeg_segment(&mut out, 0xE1, payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// EXIF APP1 payload: big-endian TIFF, IFD0 with `entries` (tag, type, count, value/offset)
/// followed by `data`, which offsets may point into (it starts at 10 + 12 × entries + 4).
fn exif(entries: &[(u16, u16, u32, [u8; 4])], data: &[u8]) -> Vec<u8> {
    let mut out = b"Exif\0\0MM\0\x2A\0\0\0\x08".to_vec();
    out.extend_from_slice(&u16::try_from(entries.len()).unwrap().to_be_bytes());
    for (tag, kind, count, value) in entries {
        out.extend_from_slice(&tag.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    out.extend_from_slice(data);
    out
}

/// EXIF with one Orientation entry (tag 0x0112, SHORT).
fn exif_orientation(orientation: u16) -> Vec<u8> {
    let [a, b] = orientation.to_be_bytes();
    exif(&[(0x0112, 3, 1, [a, b, 0, 0])], &[])
}

/// Stores `upright` so that a viewer applying `orientation` shows it upright again.
fn stored_for(upright: &RgbImage, orientation: u16) -> RgbImage {
    use imageops::{flip_horizontal, flip_vertical, rotate180, rotate270, rotate90};
    match orientation {
        2 => flip_horizontal(upright),
        3 => rotate180(upright),
        4 => flip_vertical(upright),
        // Transpose and transverse are their own inverses.
        5 => flip_horizontal(&rotate90(upright)),
        6 => rotate270(upright),
        7 => rotate90(&flip_horizontal(upright)),
        8 => rotate90(upright),
        _ => upright.clone(),
    }
}

/// Offset of the SOF0 segment's marker in a baseline JPEG from `image`'s encoder.
fn sof0(jpeg: &[u8]) -> usize {
    jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap()
}

/// The zigzag order of the 64 coefficients of a block, as (row, column) (ITU T.81 Figure 5).
fn zigzag() -> Vec<(usize, usize)> {
    let mut order = Vec::with_capacity(64);
    for s in 0..15usize {
        let rows: Vec<usize> = (s.saturating_sub(7)..=s.min(7)).collect();
        let rows: Vec<usize> = if s % 2 == 0 {
            rows.into_iter().rev().collect()
        } else {
            rows
        };
        order.extend(rows.into_iter().map(|r| (r, s - r)));
    }
    order
}

/// Entropy-coded output, most significant bit first, with 0xFF stuffed as FF 00.
#[derive(Default)]
struct ScanBits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl ScanBits {
    fn put(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.n += 1;
            if self.n == 8 {
                let byte = self.acc as u8;
                self.out.push(byte);
                if byte == 0xFF {
                    self.out.push(0);
                }
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        while self.n != 0 {
            self.put(1, 1); // pad with ones
        }
        self.out
    }
}

/// A baseline JPEG of full-resolution `planes` (one per component, all 1×1 sampled, one
/// interleaved scan), for what `image` cannot encode. Kept short: one flat quantisation table
/// (3) and fixed-length Huffman codes, 4 bits for the 12 DC categories and 8 bits for the 162
/// AC symbols, declared as such in the DHT segments (canonical codes, ITU T.81 Annex C).
fn baseline_jpeg(planes: &[GrayImage], app: &[(u8, &[u8])]) -> Vec<u8> {
    const Q: f64 = 3.0;
    let (w, h) = planes[0].dimensions();
    let ac_symbols: Vec<u8> = [0x00, 0xF0]
        .into_iter()
        .chain((0..16u8).flat_map(|run| (1..=10u8).map(move |size| (run << 4) | size)))
        .collect();
    let ac_code = |symbol: u8| ac_symbols.iter().position(|s| *s == symbol).unwrap() as u32;
    let category = |v: i32| 32 - v.unsigned_abs().leading_zeros();
    let put_value = |bits: &mut ScanBits, v: i32, cat: u32| {
        // Negative values are coded as v − 1 in `cat` bits (§F.1.2.1).
        let extra = if v < 0 { v - 1 } else { v };
        bits.put((extra as u32) & ((1u32 << cat) - 1), cat);
    };
    let zz = zigzag();
    let cos: Vec<Vec<f64>> = (0..8)
        .map(|x| {
            (0..8)
                .map(|u| (f64::from((2 * x + 1) * u) * std::f64::consts::PI / 16.0).cos())
                .collect()
        })
        .collect();
    let c = |u: usize| {
        if u == 0 {
            std::f64::consts::FRAC_1_SQRT_2
        } else {
            1.0
        }
    };

    let mut bits = ScanBits::default();
    let mut previous_dc = vec![0i32; planes.len()];
    for by in 0..h.div_ceil(8) {
        for bx in 0..w.div_ceil(8) {
            for (plane, prev) in planes.iter().zip(previous_dc.iter_mut()) {
                // Level shift, edge pixels repeated past the image.
                let f = |x: usize, y: usize| {
                    let px = (bx * 8 + x as u32).min(w - 1);
                    let py = (by * 8 + y as u32).min(h - 1);
                    f64::from(plane.get_pixel(px, py).0[0]) - 128.0
                };
                // Separable forward DCT (§A.3.3).
                let mut rows = [[0.0f64; 8]; 8];
                for (y, row) in rows.iter_mut().enumerate() {
                    for (u, out) in row.iter_mut().enumerate() {
                        *out = (0..8).map(|x| f(x, y) * cos[x][u]).sum();
                    }
                }
                let mut q = [0i32; 64];
                for (k, &(v, u)) in zz.iter().enumerate() {
                    let sum: f64 = (0..8).map(|y| rows[y][u] * cos[y][v]).sum();
                    q[k] = (0.25 * c(u) * c(v) * sum / Q).round() as i32;
                }
                let diff = q[0] - *prev;
                *prev = q[0];
                let cat = category(diff);
                bits.put(cat, 4);
                put_value(&mut bits, diff, cat);
                let mut run = 0;
                for &v in &q[1..] {
                    if v == 0 {
                        run += 1;
                        continue;
                    }
                    while run > 15 {
                        bits.put(ac_code(0xF0), 8);
                        run -= 16;
                    }
                    let cat = category(v);
                    bits.put(ac_code(((run as u8) << 4) | cat as u8), 8);
                    put_value(&mut bits, v, cat);
                    run = 0;
                }
                if run > 0 {
                    bits.put(ac_code(0x00), 8); // end of block
                }
            }
        }
    }

    let n = u8::try_from(planes.len()).unwrap();
    let mut out = vec![0xFF, 0xD8];
    for (marker, body) in app {
        jpeg_segment(&mut out, *marker, body);
    }
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[Q as u8; 64]);
    jpeg_segment(&mut out, 0xDB, &dqt);
    let mut sof = vec![8];
    sof.extend_from_slice(&u16::try_from(h).unwrap().to_be_bytes());
    sof.extend_from_slice(&u16::try_from(w).unwrap().to_be_bytes());
    sof.push(n);
    for id in 1..=n {
        sof.extend_from_slice(&[id, 0x11, 0]);
    }
    jpeg_segment(&mut out, 0xC0, &sof);
    let mut dht = vec![0x00, 0, 0, 0, 12];
    dht.extend_from_slice(&[0; 12]);
    dht.extend(0..12u8);
    jpeg_segment(&mut out, 0xC4, &dht);
    let mut dht = vec![
        0x10,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        u8::try_from(ac_symbols.len()).unwrap(),
    ];
    dht.extend_from_slice(&[0; 8]);
    dht.extend_from_slice(&ac_symbols);
    jpeg_segment(&mut out, 0xC4, &dht);
    let mut sos = vec![n];
    for id in 1..=n {
        sos.extend_from_slice(&[id, 0x00]);
    }
    sos.extend_from_slice(&[0, 63, 0]);
    jpeg_segment(&mut out, 0xDA, &sos);
    out.extend(bits.finish());
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// An Adobe CMYK JPEG of `img`, as Photoshop writes it: four components, APP14 "Adobe" with
/// transform 0, inks stored inverted (255 = no ink), so that R = C'·K'/255 on decoding.
fn cmyk_jpeg(img: &RgbImage) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let mut planes = vec![GrayImage::new(w, h); 4];
    for (x, y, p) in img.enumerate_pixels() {
        let [r, g, b] = p.0;
        let k = r.max(g).max(b); // stored K' = 255 − black
        let ink = |v: u8| {
            if k == 0 {
                0
            } else {
                u8::try_from((u32::from(v) * 255 + u32::from(k) / 2) / u32::from(k)).unwrap()
            }
        };
        for (plane, v) in planes.iter_mut().zip([ink(r), ink(g), ink(b), k]) {
            plane.put_pixel(x, y, Luma([v]));
        }
    }
    baseline_jpeg(&planes, &[(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00")])
}

/// Little-endian TIFF from `image`'s encoder with IFD0 entry `tag` set to `value` (SHORT or
/// LONG, count 1).
fn tiff_with_tag(tiff: &[u8], tag: u16, value: u32) -> Vec<u8> {
    assert_eq!(&tiff[..4], b"II*\0");
    let mut out = tiff.to_vec();
    let ifd = u32::from_le_bytes(tiff[4..8].try_into().unwrap()) as usize;
    let count = usize::from(u16::from_le_bytes([tiff[ifd], tiff[ifd + 1]]));
    for i in 0..count {
        let e = ifd + 2 + 12 * i;
        if u16::from_le_bytes([tiff[e], tiff[e + 1]]) == tag {
            match u16::from_le_bytes([tiff[e + 2], tiff[e + 3]]) {
                3 => {
                    out[e + 8..e + 10].copy_from_slice(&u16::try_from(value).unwrap().to_le_bytes())
                }
                4 => out[e + 8..e + 12].copy_from_slice(&value.to_le_bytes()),
                other => panic!("tag {tag} has type {other}"),
            }
            return out;
        }
    }
    panic!("no tag {tag} in IFD0");
}

/// A lossless WebP whose VP8L header claims `w`×`h` (each 1–16384), with a few bytes of
/// (garbage) bitstream after it.
fn vp8l_header_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut webp = b"RIFF\0\0\0\0WEBPVP8L\x20\0\0\0\x2f".to_vec();
    // 14 bits width − 1, 14 bits height − 1, alpha hint, 3-bit version 0 (WebP lossless §2).
    let header: u32 = (w - 1) | ((h - 1) << 14);
    webp.extend_from_slice(&header.to_le_bytes());
    webp.extend(Noise(7).bytes(27));
    let riff_len = u32::try_from(webp.len() - 8).unwrap();
    webp[4..8].copy_from_slice(&riff_len.to_le_bytes());
    webp
}

/// A minimal ZIP archive (one stored file), as a browser would upload a `.zip`.
fn zip_file(name: &str, data: &[u8]) -> Vec<u8> {
    let crc = crc32(data);
    let size = u32::try_from(data.len()).unwrap();
    let name_len = u16::try_from(name.len()).unwrap();
    let mut out = Vec::new();
    // Local file header (PKWARE APPNOTE §4.3.7).
    out.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0");
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(data);
    let central = out.len();
    // Central directory header (§4.3.12).
    out.extend_from_slice(b"PK\x01\x02\x14\0\x14\0\0\0\0\0\0\0\0\0");
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes
    out.extend_from_slice(&0u32.to_le_bytes()); // offset of the local header
    out.extend_from_slice(name.as_bytes());
    let central_len = u32::try_from(out.len() - central).unwrap();
    // End of central directory (§4.3.16).
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
    out.extend_from_slice(&central_len.to_le_bytes());
    out.extend_from_slice(&u32::try_from(central).unwrap().to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn side_by_side(images: &[RgbaImage]) -> RgbaImage {
    let w = images.iter().map(RgbaImage::width).sum();
    let h = images.iter().map(RgbaImage::height).max().unwrap();
    let mut out = RgbaImage::from_pixel(w, h, Rgba([128, 128, 128, 255]));
    let mut x = 0;
    for img in images {
        imageops::replace(&mut out, img, x, 0);
        x += i64::from(img.width());
    }
    out
}

fn scaled(img: &RgbaImage, factor: f32) -> RgbaImage {
    let (w, h) = (
        (img.width() as f32 * factor).round() as u32,
        (img.height() as f32 * factor).round() as u32,
    );
    imageops::resize(img, w, h, imageops::FilterType::CatmullRom)
}

// ---------------------------------------------------------------------------------------------
// Not an image at all → unsupported_format
// ---------------------------------------------------------------------------------------------

#[test]
fn zero_bytes_are_unsupported_format() {
    expect_code("zero bytes", b"", &quick(), "unsupported_format");
}

#[test]
fn text_and_documents_are_unsupported_format() {
    let svg = br##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512" viewBox="0 0 512 512">
  <circle cx="256" cy="200" r="120" fill="#e0b090"/>
  <image href="file:///etc/passwd" width="10" height="10"/>
</svg>"##;
    let cases: [(&str, &[u8]); 7] = [
        ("plain text", b"this is not an image, it is a sentence"),
        ("SVG/XML", svg),
        (
            "HTML",
            b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
        ),
        ("JSON", br#"{"image": "astronaut.png"}"#),
        (
            "PDF",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
        ),
        (
            "ELF executable",
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0",
        ),
        ("UTF-16 text", b"\xff\xfeh\0e\0l\0l\0o\0"),
    ];
    for (what, bytes) in cases {
        expect_code(what, bytes, &quick(), "unsupported_format");
    }
}

#[test]
fn a_zip_archive_even_holding_a_photo_is_unsupported_format() {
    let zip = zip_file("astronaut.png", &png(&scaled(astronaut(), 0.25)));
    assert_eq!(&zip[..4], b"PK\x03\x04");
    expect_code("ZIP", &zip, &quick(), "unsupported_format");
}

#[test]
fn noise_behind_an_image_signature_is_unsupported_format() {
    // The signature makes the format sniffer say "JPEG" (or PNG, WebP, ...); the codec must
    // then reject the body instead of inventing pixels or panicking. (Not GIF: its logical
    // screen size is the 4 bytes after the signature, so noise there rightly reads as a size,
    // often a huge one; the property tests below cover it.)
    let signatures: [(&str, &[u8]); 8] = [
        ("JPEG SOI + APP0 marker + noise", b"\xFF\xD8\xFF\xE0"),
        ("JPEG SOI + SOF0 marker + noise", b"\xFF\xD8\xFF\xC0"),
        ("bare JPEG SOI + noise", b"\xFF\xD8"),
        ("PNG signature + noise", b"\x89PNG\r\n\x1a\n"),
        ("RIFF WEBP + noise", b"RIFF\x00\x10\x00\x00WEBPVP8 "),
        ("TIFF II* + noise", b"II*\0"),
        ("TIFF MM* + noise", b"MM\0*"),
        ("BMP + noise", b"BM"),
    ];
    for (i, (what, signature)) in signatures.into_iter().enumerate() {
        let mut noise = Noise(0x9E37_79B9_7F4A_7C15 ^ i as u64);
        for len in [16, 300, 8192] {
            let mut bytes = signature.to_vec();
            bytes.extend(noise.bytes(len));
            expect_code(
                &format!("{what} ({len} bytes)"),
                &bytes,
                &quick(),
                "unsupported_format",
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Formats we recognise but do not decode → unsupported_format, with the format named
// ---------------------------------------------------------------------------------------------

#[test]
fn heic_and_avif_are_unsupported_format_and_named() {
    let iso_bmff = |brand: &[u8; 4], compatible: &[u8]| {
        let mut b = vec![0, 0, 0, 0];
        b.extend_from_slice(b"ftyp");
        b.extend_from_slice(brand);
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(compatible);
        let len = u32::try_from(b.len()).unwrap();
        b[..4].copy_from_slice(&len.to_be_bytes());
        // A `meta` box header follows in real files; the brand alone decides.
        b.extend_from_slice(b"\0\0\0\x21meta\0\0\0\0");
        b
    };
    for (what, bytes, name) in [
        ("HEIC (iPhone)", iso_bmff(b"heic", b"mif1heic"), "heic"),
        ("HEIF mif1", iso_bmff(b"mif1", b"mif1heic"), "heic"),
        ("HEIC sequence", iso_bmff(b"hevc", b"msf1hevc"), "heic"),
        ("AVIF", iso_bmff(b"avif", b"avifmif1miaf"), "avif"),
        ("AVIF sequence", iso_bmff(b"avis", b"avismsf1"), "avif"),
    ] {
        let (code, message) = render_with(&bytes, &quick()).unwrap_err();
        assert_eq!(code, "unsupported_format", "{what}: {message}");
        assert!(
            message.to_lowercase().contains(name),
            "{what}: the message names {name}: {message}"
        );
    }
}

#[test]
fn formats_this_build_does_not_decode_are_unsupported_format() {
    // Each starts with the signature `image` recognises, but its codec is not compiled in.
    let cases: [(&str, &[u8]); 6] = [
        ("PNM P6", b"P6\n64 64\n255\n\x10\x20\x30\x10\x20\x30"),
        ("ICO", b"\0\0\x01\0\x01\0\x40\x40\0\0\x01\0\x20\0"),
        ("QOI", b"qoif\0\0\0\x40\0\0\0\x40\x03\0"),
        (
            "Radiance HDR",
            b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 64 +X 64\n",
        ),
        ("OpenEXR", b"\x76\x2f\x31\x01\x02\0\0\0channels\0"),
        ("JPEG XL", b"\xff\x0a\xfa\x7f\x01\x90\x08"),
    ];
    for (what, bytes) in cases {
        expect_code(what, bytes, &quick(), "unsupported_format");
    }
}

// ---------------------------------------------------------------------------------------------
// Truncated and corrupt files → unsupported_format
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_jpegs_are_unsupported_format() {
    let full = jpeg(&astronaut_rgb(), 85);
    let sof = sof0(&full);
    for (what, cut) in [
        ("SOI only", 2),
        ("inside APP0", 10),
        ("inside the frame header", sof + 6),
        ("a quarter of the scan", full.len() / 4),
        ("half", full.len() / 2),
        ("all but the EOI marker", full.len() - 2),
        ("all but the last byte", full.len() - 1),
    ] {
        expect_code(
            &format!("JPEG cut at {what}"),
            &full[..cut],
            &quick(),
            "unsupported_format",
        );
    }
}

#[test]
fn truncated_pngs_are_unsupported_format() {
    let full = png(astronaut());
    for (what, cut) in [
        ("the signature", 8),
        ("inside IHDR", 20),
        ("right after IHDR", 33),
        ("a quarter", full.len() / 4),
        ("half", full.len() / 2),
        ("inside the last IDAT's CRC", full.len() - 14),
    ] {
        expect_code(
            &format!("PNG cut at {what}"),
            &full[..cut],
            &quick(),
            "unsupported_format",
        );
    }
}

#[test]
fn truncated_gif_webp_bmp_and_tiff_are_unsupported_format() {
    let small = DynamicImage::ImageRgba8(scaled(astronaut(), 0.25));
    for format in [
        ImageFormat::Gif,
        ImageFormat::WebP,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
    ] {
        let full = encode(&small, format);
        for cut in [full.len() / 4, full.len() / 2] {
            expect_code(
                &format!("{format:?} cut to {cut} of {} bytes", full.len()),
                &full[..cut],
                &quick(),
                "unsupported_format",
            );
        }
    }
    // A GIF missing only its last two bytes (block terminator, trailer) still holds its whole
    // frame, and decodes: nothing is invented.
    let gif = encode(&small, ImageFormat::Gif);
    let decoded = decode(&gif[..gif.len() - 2], &DecodeParams::default()).unwrap();
    assert_eq!(decoded.image.dimensions(), (128, 128));
}

#[test]
fn a_truncated_jpeg_with_an_end_marker_appended_is_unsupported_format() {
    // The JPEG codec (zune-jpeg, lenient even in strict mode) decodes a scan that stops
    // half-way as if it were whole and invents the missing rows; a truncated file with FF D9
    // appended (what some "repair" tools and interrupted writers leave) must still be
    // `unsupported_format`, which pipeline::jpeg_scan's walk of the scans ensures.
    let full = jpeg(&astronaut_rgb(), 85);
    let sos = full.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let mid = sos + (full.len() - sos) / 2;
    let mut bytes = full[..mid].to_vec();
    bytes.extend_from_slice(&[0xFF, 0xD9]);
    expect_code(
        "JPEG cut in the middle of its scan, EOI appended",
        &bytes,
        &quick(),
        "unsupported_format",
    );
}

#[test]
fn a_png_with_a_damaged_chunk_is_unsupported_format() {
    // One flipped byte inside the first IDAT: its CRC no longer matches (and the zlib stream
    // is damaged too).
    let mut bytes = png(astronaut());
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    bytes[idat + 200] ^= 0x55;
    expect_code(
        "PNG with a flipped IDAT byte",
        &bytes,
        &quick(),
        "unsupported_format",
    );
}

#[test]
fn jpeg_codings_the_decoder_lacks_are_unsupported_format() {
    // Same file, frame marker changed: lossless (SOF3), arithmetic-coded (SOF9), and a
    // baseline frame claiming 12-bit samples.
    let full = jpeg(&astronaut_rgb(), 85);
    let sof = sof0(&full);
    for (what, marker, precision) in [
        ("lossless (SOF3)", 0xC3, 8),
        ("arithmetic (SOF9)", 0xC9, 8),
        ("hierarchical (SOF5)", 0xC5, 8),
        ("12-bit baseline", 0xC0, 12),
    ] {
        let mut bytes = full.clone();
        bytes[sof + 1] = marker;
        bytes[sof + 4] = precision;
        expect_code(what, &bytes, &quick(), "unsupported_format");
    }
}

#[test]
fn a_tiff_with_an_unknown_compression_is_unsupported_format() {
    let tiff = encode(
        &DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(scaled(astronaut(), 0.25)).to_rgb8()),
        ImageFormat::Tiff,
    );
    // Compression (tag 259) = 34712, JPEG 2000, which the TIFF codec cannot decode.
    let bytes = tiff_with_tag(&tiff, 259, 34_712);
    expect_code("TIFF/JPEG 2000", &bytes, &quick(), "unsupported_format");
}

// ---------------------------------------------------------------------------------------------
// Size limits → image_too_large / image_too_small, all before pixels are allocated
// ---------------------------------------------------------------------------------------------

#[test]
fn input_over_the_byte_limit_is_image_too_large() {
    // A real photo padded past the 20 MiB default: rejected on its length, unparsed.
    let limit = DecodeParams::default().max_bytes;
    let mut bytes = png(astronaut());
    bytes.resize(limit + 1, 0);
    expect_code("20 MiB + 1 byte", &bytes, &quick(), "image_too_large");
    // Exactly at the limit it is parsed (and the padding after IEND is ignored).
    bytes.truncate(limit);
    let p = expect_portrait("exactly 20 MiB", &bytes, &quick());
    assert_reference_face("exactly 20 MiB", &p, 2.0);
}

#[test]
fn decompression_bombs_are_image_too_large() {
    // The generator makes real files: a small one decodes.
    let small = decode(&black_bilevel_png(64, 48), &DecodeParams::default()).unwrap();
    assert_eq!(small.image.dimensions(), (64, 48));
    assert!(small.image.pixels().all(|p| p.0 == [0, 0, 0, 255]));

    // 20000×20000 (400 MP, 1.6 GB as RGBA) in ~300 KB, well-formed to the last byte.
    let bomb = black_bilevel_png(20_000, 20_000);
    assert!(bomb.len() < 400_000, "{} bytes", bomb.len());
    expect_code(
        "PNG bomb 20000² (valid file)",
        &bomb,
        &quick(),
        "image_too_large",
    );
    // The 50000×50000 header of a 40×40 file.
    expect_code(
        "PNG header claiming 50000²",
        &png_header_claiming(50_000, 50_000),
        &quick(),
        "image_too_large",
    );
    // Just over the pixel limit with both sides allowed: 12000 × 3334 = 40 008 000 pixels.
    expect_code(
        "PNG header claiming 12000×3334",
        &png_header_claiming(12_000, 3_334),
        &quick(),
        "image_too_large",
    );
    // 2³¹−1 a side, the most PNG allows: the pixel count must not overflow into something small.
    expect_code(
        "PNG header claiming 2³¹−1 square",
        &png_header_claiming(0x7FFF_FFFF, 0x7FFF_FFFF),
        &quick(),
        "image_too_large",
    );
}

#[test]
fn headers_of_other_formats_claiming_huge_sizes_are_image_too_large() {
    let small = scaled(astronaut(), 0.125);
    // JPEG: SOF0 says 65000×65000.
    let mut jpg = jpeg(&DynamicImage::ImageRgba8(small.clone()).to_rgb8(), 80);
    let sof = sof0(&jpg);
    jpg[sof + 5..sof + 7].copy_from_slice(&65_000u16.to_be_bytes());
    jpg[sof + 7..sof + 9].copy_from_slice(&65_000u16.to_be_bytes());
    expect_code("JPEG claiming 65000²", &jpg, &quick(), "image_too_large");

    // WebP lossless (VP8L) header: 16000×16000.
    expect_code(
        "WebP claiming 16000²",
        &vp8l_header_claiming(16_000, 16_000),
        &quick(),
        "image_too_large",
    );

    // TIFF: ImageWidth, ImageLength and RowsPerStrip (so the strip count stays consistent)
    // say 100000.
    let mut tiff = encode(&DynamicImage::ImageRgba8(small.clone()), ImageFormat::Tiff);
    for tag in [256, 257, 278] {
        tiff = tiff_with_tag(&tiff, tag, 100_000);
    }
    expect_code("TIFF claiming 100000²", &tiff, &quick(), "image_too_large");

    // BMP: BITMAPINFOHEADER width / height say 50000.
    let mut bmp = encode(
        &DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(small).to_rgb8()),
        ImageFormat::Bmp,
    );
    bmp[18..22].copy_from_slice(&50_000i32.to_le_bytes());
    bmp[22..26].copy_from_slice(&50_000i32.to_le_bytes());
    expect_code("BMP claiming 50000²", &bmp, &quick(), "image_too_large");
}

#[test]
fn a_lossless_webp_at_the_format_maximum_is_image_too_large() {
    // image-webp 0.2.4 reads a VP8L side as `(1 + bits) & 0x3FFF` instead of
    // `(bits & 0x3FFF) + 1`, so a side of exactly 16384 (the format's maximum) comes out as 0;
    // decode reads the header itself when the codec says 0, so these are `image_too_large`
    // and not `image_too_small`.
    expect_code(
        "WebP claiming 16383²",
        &vp8l_header_claiming(16_383, 16_383),
        &quick(),
        "image_too_large",
    );
    expect_code(
        "WebP claiming 16384×16384",
        &vp8l_header_claiming(16_384, 16_384),
        &quick(),
        "image_too_large",
    );
    expect_code(
        "WebP claiming 16384×100",
        &vp8l_header_claiming(16_384, 100),
        &quick(),
        "image_too_large",
    );
}

#[test]
fn a_gif_frame_larger_than_its_screen_is_image_too_large() {
    // A 64×64 logical screen (within every limit) holding one 60000×60000 frame: the frame is
    // what a decoder allocates for, so the memory cap has to catch it.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&64u16.to_le_bytes());
    gif.extend_from_slice(&64u16.to_le_bytes());
    gif.extend_from_slice(&[0x80, 0, 0]); // global colour table of 2 entries
    gif.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    gif.push(0x2C); // image descriptor
    gif.extend_from_slice(&[0, 0, 0, 0]);
    gif.extend_from_slice(&60_000u16.to_le_bytes());
    gif.extend_from_slice(&60_000u16.to_le_bytes());
    gif.push(0);
    // LZW, minimum code size 2: clear (4), end (5), 3 bits each.
    gif.extend_from_slice(&[2, 1, 0x2C, 0]);
    gif.push(0x3B);
    expect_code("GIF frame 60000²", &gif, &quick(), "image_too_large");
}

#[test]
fn absurd_strips_are_rejected_by_their_short_or_long_side() {
    let strip = |w, h| png(&RgbaImage::from_pixel(w, h, Rgba([200, 180, 160, 255])));
    // Real files: 10000 px is within the side limit, but 1 px is under the 32-px minimum.
    expect_code("1×10000", &strip(1, 10_000), &quick(), "image_too_small");
    expect_code("10000×1", &strip(10_000, 1), &quick(), "image_too_small");
    expect_code("31×400", &strip(31, 400), &quick(), "image_too_small");
    // 12001 px is over the 12000-px side limit, though only 480 040 pixels.
    expect_code("40×12001", &strip(40, 12_001), &quick(), "image_too_large");
    expect_code("12001×40", &strip(12_001, 40), &quick(), "image_too_large");
    // Exactly the minimum decodes, and then there is no face in it.
    expect_code("32×32", &strip(32, 32), &quick(), "no_face_detected");
}

#[test]
fn one_pixel_images_are_image_too_small() {
    let pixel = DynamicImage::ImageRgb8(RgbImage::from_pixel(1, 1, Rgb([10, 20, 30])));
    for format in [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Gif,
        ImageFormat::WebP,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
    ] {
        expect_code(
            &format!("1×1 {format:?}"),
            &encode(&pixel, format),
            &quick(),
            "image_too_small",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Unusual but valid layouts → the same portrait as the plain photo
// ---------------------------------------------------------------------------------------------

#[test]
fn a_cmyk_jpeg_gives_the_same_face() {
    let rgb = astronaut_rgb();
    // The hand-made encoder itself is sound: one grey plane comes back within JPEG error.
    let grey = DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
    let back = decode(
        &baseline_jpeg(std::slice::from_ref(&grey), &[]),
        &DecodeParams::default(),
    )
    .unwrap();
    let err: u64 = back
        .image
        .pixels()
        .zip(grey.pixels())
        .map(|(a, b)| u64::from(a.0[0].abs_diff(b.0[0])))
        .sum();
    assert!(
        err / (512 * 512) < 3,
        "grey round trip: mean error {}",
        err / (512 * 512)
    );

    let bytes = cmyk_jpeg(&rgb);
    // Colours come back right (not inverted, not YCCK-mangled): mean error per channel small.
    let decoded = decode(&bytes, &DecodeParams::default()).unwrap();
    assert_eq!(decoded.format, "jpeg");
    let total: u64 = decoded
        .image
        .pixels()
        .zip(rgb.pixels())
        .map(|(a, b)| {
            (0..3)
                .map(|i| u64::from(a.0[i].abs_diff(b.0[i])))
                .sum::<u64>()
        })
        .sum();
    let mean = total as f64 / (3.0 * 512.0 * 512.0);
    assert!(mean < 4.0, "mean channel error {mean:.2}");
    let p = expect_portrait("CMYK JPEG", &bytes, &quick());
    assert_reference_face("CMYK JPEG", &p, 6.0);
}

#[test]
fn a_sixteen_bit_png_gives_the_same_face() {
    let img = DynamicImage::ImageRgb16(DynamicImage::ImageRgba8(astronaut().clone()).to_rgb16());
    let p = expect_portrait("16-bit RGB PNG", &encode(&img, ImageFormat::Png), &quick());
    assert_reference_face("16-bit RGB PNG", &p, 2.0);
}

#[test]
fn a_palette_png_with_transparency_gives_the_same_face() {
    // The photo quantised to a 6×7×6 colour cube (252 entries) plus one fully transparent
    // entry, used for a 24-px frame around it: PLTE + tRNS, colour type 3.
    let mut palette: Vec<[u8; 4]> = Vec::new();
    for r in 0..6u32 {
        for g in 0..7u32 {
            for b in 0..6u32 {
                let level = |v: u32, steps: u32| u8::try_from(v * 255 / steps).unwrap();
                palette.push([level(r, 5), level(g, 6), level(b, 5), 255]);
            }
        }
    }
    palette.push([0, 0, 0, 0]);
    let src = astronaut();
    let bytes = palette_png(512, 512, &palette, |x, y| {
        if x < 24 || y < 24 || x >= 488 || y >= 488 {
            return 252;
        }
        let p = src.get_pixel(x, y).0;
        let q = |v: u8, steps: u32| (u32::from(v) * steps + 127) / 255;
        u8::try_from(q(p[0], 5) * 42 + q(p[1], 6) * 6 + q(p[2], 5)).unwrap()
    });
    let decoded = decode(&bytes, &DecodeParams::default()).unwrap();
    assert!(decoded.has_transparency);
    let p = expect_portrait("palette + tRNS PNG", &bytes, &quick());
    assert_reference_face("palette + tRNS PNG", &p, 8.0);
}

#[test]
fn grey_and_grey_alpha_images_give_the_same_face() {
    let grey = DynamicImage::ImageRgba8(astronaut().clone()).to_luma8();
    let mut grey_alpha = DynamicImage::ImageLuma8(grey.clone()).to_luma_alpha8();
    for (x, y, p) in grey_alpha.enumerate_pixels_mut() {
        if x < 24 || y < 24 {
            *p = LumaA([0, 0]);
        }
    }
    for (what, bytes) in [
        (
            "8-bit grey PNG",
            encode(&DynamicImage::ImageLuma8(grey.clone()), ImageFormat::Png),
        ),
        (
            "grey JPEG",
            encode(&DynamicImage::ImageLuma8(grey), ImageFormat::Jpeg),
        ),
        (
            "grey + alpha PNG",
            encode(&DynamicImage::ImageLumaA8(grey_alpha), ImageFormat::Png),
        ),
    ] {
        let p = expect_portrait(what, &bytes, &quick());
        assert_reference_face(what, &p, 6.0);
    }
}

#[test]
fn an_animated_gif_uses_its_first_frame() {
    // Frame 1 is the photo, frame 2 an empty grey card: a face is found only if frame 1 is used.
    let mut gif = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut gif, 10);
        encoder
            .encode_frame(Frame::new(astronaut().clone()))
            .unwrap();
        encoder
            .encode_frame(Frame::new(RgbaImage::from_pixel(
                512,
                512,
                Rgba([128, 128, 128, 255]),
            )))
            .unwrap();
    }
    let p = expect_portrait("animated GIF", &gif, &quick());
    assert_reference_face("animated GIF", &p, 8.0);
}

#[test]
fn webp_bmp_and_tiff_give_the_same_face() {
    let rgb = DynamicImage::ImageRgb8(astronaut_rgb());
    for format in [ImageFormat::WebP, ImageFormat::Bmp, ImageFormat::Tiff] {
        let what = format!("{format:?}");
        let p = expect_portrait(&what, &encode(&rgb, format), &quick());
        assert_reference_face(&what, &p, 2.0);
    }
}

// ---------------------------------------------------------------------------------------------
// EXIF: every orientation, and broken or oversized blocks that must not cost the upload
// ---------------------------------------------------------------------------------------------

#[test]
fn every_exif_orientation_gives_the_same_face() {
    let upright = astronaut_rgb();
    for orientation in 1..=8u16 {
        let stored = stored_for(&upright, orientation);
        let bytes = with_app1(&jpeg(&stored, 90), &exif_orientation(orientation));
        let what = format!("EXIF orientation {orientation}");
        let p = expect_portrait(&what, &bytes, &quick());
        assert_reference_face(&what, &p, 6.0);
    }
}

#[test]
fn invalid_orientation_values_are_ignored() {
    let bytes = jpeg(&astronaut_rgb(), 90);
    for orientation in [0u16, 9, 255, 0xFFFF] {
        let what = format!("EXIF orientation {orientation}");
        let p = expect_portrait(
            &what,
            &with_app1(&bytes, &exif_orientation(orientation)),
            &quick(),
        );
        assert_reference_face(&what, &p, 6.0);
    }
}

#[test]
fn corrupt_exif_is_ignored() {
    let bytes = jpeg(&astronaut_rgb(), 90);
    let mut garbage = b"Exif\0\0".to_vec();
    garbage.extend(Noise(42).bytes(600));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("Exif header + noise", garbage),
        ("APP1 of 'Exif' and nothing else", b"Exif\0\0".to_vec()),
        ("empty APP1", Vec::new()),
        (
            "bad byte order mark",
            b"Exif\0\0XX\0\x2A\0\0\0\x08\0\0".to_vec(),
        ),
        (
            "IFD offset past the end",
            b"Exif\0\0MM\0\x2A\xFF\xFF\xFF\xF0".to_vec(),
        ),
        (
            "65535 IFD entries announced, none present",
            b"Exif\0\0MM\0\x2A\0\0\0\x08\xFF\xFF".to_vec(),
        ),
        (
            "orientation as a LONG array pointing past the end",
            exif(&[(0x0112, 4, 0x4000_0000, [0xFF, 0xFF, 0xFF, 0xF0])], &[]),
        ),
        (
            "orientation of an unknown type",
            exif(&[(0x0112, 99, 1, [0, 6, 0, 0])], &[]),
        ),
        (
            "IFD pointing at itself",
            exif(&[(0x8769, 4, 1, [0, 0, 0, 8])], &[]),
        ),
    ];
    for (what, payload) in cases {
        let p = expect_portrait(what, &with_app1(&bytes, &payload), &quick());
        assert_reference_face(what, &p, 6.0);
    }
}

#[test]
fn a_huge_exif_block_is_read_through() {
    // ~60 KB of APP1 (the segment maximum is 64 KB): an orientation-6 entry and a 60000-byte
    // MakerNote. The photo is stored turned, so a face is found only if the orientation is
    // still read behind all that.
    let upright = astronaut_rgb();
    let blob = Noise(3).bytes(60_000);
    let data_offset: u32 = 8 + 2 + 2 * 12 + 4;
    let payload = exif(
        &[
            (0x0112, 3, 1, [0, 6, 0, 0]),
            (
                0x927C,
                7,
                u32::try_from(blob.len()).unwrap(),
                data_offset.to_be_bytes(),
            ),
        ],
        &blob,
    );
    assert!(payload.len() > 60_000 && payload.len() < 65_533);
    let bytes = with_app1(&jpeg(&stored_for(&upright, 6), 90), &payload);
    let p = expect_portrait("60 KB EXIF", &bytes, &quick());
    assert_reference_face("60 KB EXIF", &p, 6.0);
}

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
fn a_face_at_the_edge_of_the_frame_is_centred_or_image_too_small() {
    let reference = reference_face();
    // The photo cut 4 px left of the face box: the face touches the left edge. The crop
    // shrinks symmetrically around the eyes, so the portrait is narrower but centred.
    let cut = (reference.x - 4.0).max(0.0) as u32;
    let img = imageops::crop_imm(astronaut(), cut, 0, 512 - cut, 512).to_image();
    let p = expect_portrait("face at the left edge", &png(&img), &quick());
    let face = p.face.unwrap();
    assert_eq!(face.faces_found, 1);
    assert!(
        (face.bbox.x - (reference.x - cut as f32)).abs() <= 6.0,
        "{:?}",
        face.bbox
    );
    // Cut through the middle of the face: the eye midpoint lands ~2 px from the edge, the
    // detectors still see half a face with both eyes, and a crop centred on the eyes has no
    // room left (narrower than the 40-px minimum): image_too_small, not a sliver.
    let cut = (reference.x + reference.width / 2.0) as u32;
    let img = imageops::crop_imm(astronaut(), cut, 0, 512 - cut, 512).to_image();
    expect_code("face cut in half", &png(&img), &quick(), "image_too_small");
    // The face touching the top edge is fine too.
    let img = imageops::crop_imm(
        astronaut(),
        0,
        reference.y as u32,
        512,
        512 - reference.y as u32,
    )
    .to_image();
    expect_portrait("face at the top edge", &png(&img), &quick());
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

// ---------------------------------------------------------------------------------------------
// Property tests: decode never panics, and answers only with documented codes
// ---------------------------------------------------------------------------------------------

mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use proptest::test_runner::{Config, RngSeed};
    use serde_json::{json, Map, Value};

    /// Cases per property unless `PROPTEST_CASES` says otherwise; a fixed seed unless
    /// `PROPTEST_RNG_SEED` gives one, so CI is repeatable and a long local run can explore:
    /// `PROPTEST_CASES=100000 PROPTEST_RNG_SEED=$RANDOM cargo test --test hostile fuzz`.
    fn config(cases: u32) -> Config {
        let mut config = Config::default();
        if std::env::var_os("PROPTEST_CASES").is_none() {
            config.cases = cases;
        }
        if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
            config.rng_seed = RngSeed::Fixed(0xFACE_C4AF);
        }
        // A failure prints its minimal input; write the regression test by hand.
        config.failure_persistence = None;
        config
    }

    /// Tighter than the defaults, so a mutated header that claims a big (but allowed) image
    /// costs megabytes, not hundreds of them; the property holds for any limits.
    fn limits() -> DecodeParams {
        DecodeParams {
            max_bytes: 1 << 20,
            max_pixels: 1_000_000,
            max_dimension: 4_000,
            min_dimension: 32,
        }
    }

    const SEEDS: usize = 10;

    /// Small valid files of every layout the decoder handles, each 48×40 with detail in
    /// every channel.
    fn seeds() -> &'static [(&'static str, Vec<u8>)] {
        static SEED_FILES: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
        SEED_FILES.get_or_init(|| {
            let rgba = RgbaImage::from_fn(48, 40, |x, y| {
                Rgba([
                    (x * 5) as u8,
                    (y * 6) as u8,
                    ((x * y) % 256) as u8,
                    if x < 8 { 100 } else { 255 },
                ])
            });
            let rgb = DynamicImage::ImageRgba8(rgba.clone()).to_rgb8();
            let dynamic = DynamicImage::ImageRgba8(rgba.clone());
            let mut gif = Vec::new();
            {
                let mut encoder = GifEncoder::new_with_speed(&mut gif, 30);
                encoder.encode_frame(Frame::new(rgba.clone())).unwrap();
                encoder
                    .encode_frame(Frame::new(imageops::flip_horizontal(&rgba)))
                    .unwrap();
            }
            let palette: Vec<[u8; 4]> = (0..16u8)
                .map(|i| [i * 16, 255 - i * 16, i, i * 17])
                .collect();
            let seeds = vec![
                ("png rgba8", png(&rgba)),
                (
                    "png rgb16",
                    encode(
                        &DynamicImage::ImageRgb16(dynamic.to_rgb16()),
                        ImageFormat::Png,
                    ),
                ),
                (
                    "png palette+tRNS",
                    palette_png(48, 40, &palette, |x, y| ((x + y) % 16) as u8),
                ),
                (
                    "jpeg + EXIF orientation 6",
                    with_app1(&jpeg(&rgb, 80), &exif_orientation(6)),
                ),
                ("jpeg cmyk", cmyk_jpeg(&rgb)),
                ("gif animated", gif),
                ("webp lossless", encode(&dynamic, ImageFormat::WebP)),
                (
                    "bmp",
                    encode(&DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Bmp),
                ),
                ("tiff", encode(&dynamic, ImageFormat::Tiff)),
                (
                    "grey jpeg",
                    encode(
                        &DynamicImage::ImageLuma8(dynamic.to_luma8()),
                        ImageFormat::Jpeg,
                    ),
                ),
            ];
            assert_eq!(seeds.len(), SEEDS);
            for (name, bytes) in &seeds {
                decode(bytes, &limits()).unwrap_or_else(|e| panic!("seed {name}: {e}"));
            }
            seeds
        })
    }

    /// Where a mutation lands: half the time in the first 64 bytes, where the headers are.
    #[derive(Debug, Clone)]
    enum Pos {
        Head(usize),
        Anywhere(Index),
    }

    impl Pos {
        fn at(&self, len: usize) -> usize {
            match self {
                Self::Head(i) => (*i).min(len.saturating_sub(1)),
                Self::Anywhere(i) if len > 0 => i.index(len),
                Self::Anywhere(_) => 0,
            }
        }
    }

    fn pos() -> impl Strategy<Value = Pos> {
        prop_oneof![
            (0usize..64).prop_map(Pos::Head),
            any::<Index>().prop_map(Pos::Anywhere),
        ]
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Truncate(Pos),
        Xor(Pos, u8),
        /// A 16- or 32-bit field (a width, a length, an offset) set to an extreme or random
        /// value, in either byte order.
        Field {
            at: Pos,
            value: u32,
            wide: bool,
            big_endian: bool,
        },
        Insert(Pos, Vec<u8>),
        Remove(Pos, usize),
        Duplicate(Pos, usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let field_value = prop_oneof![
            Just(0u32),
            Just(1),
            Just(0x7FFF),
            Just(0xFFFF),
            Just(0x7FFF_FFFF),
            Just(u32::MAX),
            any::<u32>(),
        ];
        prop_oneof![
            pos().prop_map(Mutation::Truncate),
            (pos(), 1u8..=255).prop_map(|(p, x)| Mutation::Xor(p, x)),
            (pos(), field_value, any::<bool>(), any::<bool>()).prop_map(
                |(at, value, wide, big_endian)| Mutation::Field {
                    at,
                    value,
                    wide,
                    big_endian,
                }
            ),
            (pos(), proptest::collection::vec(any::<u8>(), 1..32))
                .prop_map(|(p, b)| Mutation::Insert(p, b)),
            (pos(), 1usize..256).prop_map(|(p, n)| Mutation::Remove(p, n)),
            (pos(), 1usize..256).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
        let len = bytes.len();
        match m {
            Mutation::Truncate(p) => bytes.truncate(p.at(len)),
            Mutation::Xor(p, x) if len > 0 => bytes[p.at(len)] ^= x,
            Mutation::Field {
                at,
                value,
                wide,
                big_endian,
            } => {
                let field: Vec<u8> = match (wide, big_endian) {
                    (true, true) => value.to_be_bytes().to_vec(),
                    (true, false) => value.to_le_bytes().to_vec(),
                    (false, true) => (*value as u16).to_be_bytes().to_vec(),
                    (false, false) => (*value as u16).to_le_bytes().to_vec(),
                };
                let start = at.at(len);
                for (i, b) in field.into_iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(start + i) {
                        *slot = b;
                    }
                }
            }
            Mutation::Insert(p, data) => {
                let at = p.at(len);
                bytes.splice(at..at, data.iter().copied());
            }
            Mutation::Remove(p, n) => {
                let at = p.at(len);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Duplicate(p, n) => {
                let at = p.at(len);
                let copy = bytes[at..(at + n).min(len)].to_vec();
                bytes.splice(at..at, copy);
            }
            Mutation::Xor(..) => {}
        }
    }

    /// The property: a decoded image respects the limits and the orientation it reports; an
    /// error carries one of the three codes decode is documented to give.
    fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
        let limits = limits();
        match decode(bytes, &limits) {
            Ok(d) => {
                let (w, h) = d.image.dimensions();
                prop_assert!((1..=8).contains(&d.orientation), "{}", d.orientation);
                let stored = if d.orientation >= 5 { (h, w) } else { (w, h) };
                prop_assert_eq!(stored, (d.original_width, d.original_height));
                prop_assert!(w >= limits.min_dimension && h >= limits.min_dimension);
                prop_assert!(w <= limits.max_dimension && h <= limits.max_dimension);
                prop_assert!(u64::from(w) * u64::from(h) <= limits.max_pixels);
                prop_assert_eq!(d.image.as_raw().len(), (w * h * 4) as usize);
            }
            Err(e) => prop_assert!(
                matches!(
                    e.code(),
                    "unsupported_format" | "image_too_large" | "image_too_small"
                ),
                "undocumented code {} for: {}",
                e.code(),
                e
            ),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config(4000))]

        #[test]
        fn mutated_images_decode_or_fail_with_a_documented_code(
            seed in 0..SEEDS,
            mutations in proptest::collection::vec(mutation(), 1..5),
        ) {
            let mut bytes = seeds()[seed].1.clone();
            for m in &mutations {
                apply(&mut bytes, m);
            }
            check(&bytes)?;
        }

        #[test]
        fn random_bytes_behind_a_signature_never_panic(
            signature in prop::sample::select(vec![
                &b"\xFF\xD8\xFF"[..],
                b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR",
                b"GIF89a",
                b"GIF87a",
                b"RIFF\0\0\0\0WEBPVP8L",
                b"RIFF\0\0\0\0WEBPVP8 ",
                b"RIFF\0\0\0\0WEBPVP8X",
                b"II*\0",
                b"MM\0*",
                b"BM",
                b"\0\0\0\x18ftypheic",
            ]),
            tail in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut bytes = signature.to_vec();
            bytes.extend(tail);
            check(&bytes)?;
        }
    }

    // ------------------------------ job parameters ------------------------------

    /// A JSON value for one parameter and whether README's table allows it. Only values
    /// whose verdict the table settles are generated (no 2.0000001 that f32 rounds to 2).
    type Tagged = (Value, bool);

    fn tagged(
        valid: impl Strategy<Value = Value> + 'static,
        invalid: impl Strategy<Value = Value> + 'static,
    ) -> BoxedStrategy<Tagged> {
        prop_oneof![
            3 => valid.prop_map(|v| (v, true)),
            1 => invalid.prop_map(|v| (v, false)),
        ]
        .boxed()
    }

    fn wrong_types() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(json!("")),
            Just(json!({})),
            Just(json!([])),
            Just(json!(true)),
        ]
    }

    fn side() -> BoxedStrategy<Tagged> {
        tagged(
            (16u32..=4096).prop_map(Value::from),
            prop_oneof![
                (0u32..16).prop_map(Value::from),
                (4097u32..=u32::MAX).prop_map(Value::from),
                (u64::from(u32::MAX) + 1..=u64::MAX).prop_map(Value::from),
                (i64::MIN..0).prop_map(Value::from),
                Just(json!(648.0)),
                Just(json!(648.5)),
                Just(json!("648")),
                wrong_types(),
            ],
        )
    }

    /// A float parameter allowed in `0..=max`.
    fn fraction(max: f32) -> BoxedStrategy<Tagged> {
        let max64 = f64::from(max);
        tagged(
            prop_oneof![
                (0.0f32..=max).prop_map(|f| json!(f64::from(f))),
                Just(json!(0)),
                Just(json!(max64)),
                Just(json!(1)),
            ],
            prop_oneof![
                (-1e6f64..-1e-3).prop_map(Value::from),
                (max64 + 1e-3..1e6).prop_map(Value::from),
                Just(json!(1e39)), // finite in JSON, infinite as f32
                Just(json!(-1e39)),
                Just(json!("0.5")),
                wrong_types(),
            ],
        )
    }

    fn flag() -> BoxedStrategy<Tagged> {
        tagged(
            any::<bool>().prop_map(Value::from),
            prop_oneof![
                Just(json!(0)),
                Just(json!(1)),
                Just(json!("true")),
                Just(json!("yes")),
                Just(Value::Null),
            ],
        )
    }

    fn colour() -> BoxedStrategy<Tagged> {
        tagged(
            prop_oneof![
                any::<[u8; 3]>().prop_map(|c| json!(format!("{},{},{}", c[0], c[1], c[2]))),
                any::<[u8; 3]>().prop_map(|c| json!(format!("{}, {} ,{}", c[0], c[1], c[2]))),
                any::<[u8; 3]>()
                    .prop_map(|c| json!(format!("#{:02x}{:02X}{:02x}", c[0], c[1], c[2]))),
                any::<[u8; 3]>().prop_map(|c| json!([c[0], c[1], c[2]])),
            ],
            prop_oneof![
                (256u32..100_000).prop_map(|v| json!(format!("{v},0,0"))),
                (256i64..100_000).prop_map(|v| json!([0, v, 0])),
                (i64::MIN..0).prop_map(|v| json!([0, 0, v])),
                Just(json!([1, 2])),
                Just(json!([1, 2, 3, 4])),
                Just(json!([1.5, 2, 3])),
                Just(json!("1,2")),
                Just(json!("1,2,3,4")),
                Just(json!("#12345")),
                Just(json!("#1234567")),
                Just(json!("#ggg000")),
                Just(json!("red")),
                Just(json!(0xF0F0F0)),
                wrong_types(),
            ],
        )
    }

    fn formats() -> BoxedStrategy<Tagged> {
        tagged(
            prop::sample::select(vec![
                json!(["png"]),
                json!(["jpg"]),
                json!(["jpeg"]),
                json!(["png", "jpg"]),
                json!(["jpg", "png"]),
                json!(["jpeg", "png"]),
            ]),
            prop::sample::select(vec![
                json!([]),
                json!(["gif"]),
                json!(["PNG"]),
                json!(["png", "png"]),
                json!(["jpg", "jpeg"]),
                json!("png"),
                json!([1]),
                Value::Null,
            ]),
        )
    }

    fn jpeg_max_bytes() -> BoxedStrategy<Tagged> {
        tagged(
            prop_oneof![
                (1024u32..=20_000_000).prop_map(Value::from),
                Just(json!(1024)),
                Just(json!(20_000_000))
            ],
            prop_oneof![
                (0u32..1024).prop_map(Value::from),
                (20_000_001u32..=u32::MAX).prop_map(Value::from),
                (u64::from(u32::MAX) + 1..=u64::MAX).prop_map(Value::from),
                (i64::MIN..0).prop_map(Value::from),
                Just(json!(5000.0)),
                Just(json!("5000")),
                wrong_types(),
            ],
        )
    }

    fn one_of(
        valid: &'static [&'static str],
        invalid: &'static [&'static str],
    ) -> BoxedStrategy<Tagged> {
        tagged(
            prop::sample::select(valid).prop_map(Value::from),
            prop_oneof![
                prop::sample::select(invalid).prop_map(Value::from),
                wrong_types(),
            ],
        )
    }

    /// Every documented parameter with its generator, in README order.
    fn documented() -> Vec<(&'static str, BoxedStrategy<Tagged>)> {
        vec![
            ("width", side()),
            ("height", side()),
            ("background", colour()),
            ("transparent", flag()),
            ("face_margin", fraction(2.0)),
            ("oval_mask", flag()),
            ("enhance", flag()),
            ("enhance_fidelity", fraction(1.0)),
            ("formats", formats()),
            ("jpeg_max_bytes", jpeg_max_bytes()),
            (
                "face_policy",
                one_of(
                    &["largest", "error"],
                    &["Largest", "first", "all", " error"],
                ),
            ),
            (
                "detector",
                one_of(
                    &["hog", "cnn", "retinaface"],
                    &["HOG", "yolo", "retina_face", "mtcnn"],
                ),
            ),
            (
                "segmentation_model",
                one_of(
                    &["u2netp", "u2net", "u2net_human_seg"],
                    &["u2net-human-seg", "U2NET", "sam", "modnet"],
                ),
            ),
            ("remove_background", flag()),
        ]
    }

    /// A parameter object: each documented field present with probability ~40 %, and now
    /// and then a field the contract does not know. Returns the object and its verdict.
    fn params_object() -> impl Strategy<Value = (Map<String, Value>, bool)> {
        let fields: Vec<BoxedStrategy<Option<(&'static str, Tagged)>>> = documented()
            .into_iter()
            .map(|(name, s)| {
                proptest::option::weighted(0.4, s.prop_map(move |t| (name, t))).boxed()
            })
            .collect();
        let unknown = proptest::option::weighted(
            0.1,
            (
                prop::sample::select(vec![
                    "colour",
                    "Width",
                    "width ",
                    "",
                    "params",
                    "__proto__",
                    "quality",
                    "face",
                ]),
                wrong_types(),
            ),
        );
        (fields, unknown).prop_map(|(fields, unknown)| {
            let mut obj = Map::new();
            let mut valid = true;
            for (name, (value, ok)) in fields.into_iter().flatten() {
                obj.insert(name.to_owned(), value);
                valid &= ok;
            }
            if let Some((name, value)) = unknown {
                obj.insert(name.to_owned(), value);
                valid = false;
            }
            (obj, valid)
        })
    }

    /// What the API does with a `params` object: deserialise (unknown field, wrong type),
    /// then range-check. Both failures answer `400 invalid_params`.
    fn accept(obj: &Map<String, Value>) -> Result<JobParams, String> {
        let params: JobParams =
            serde_json::from_value(Value::Object(obj.clone())).map_err(|e| e.to_string())?;
        params.validate()?;
        Ok(params)
    }

    /// Independent restatement of README's ranges, checked on everything accepted.
    fn in_documented_ranges(p: &JobParams) -> bool {
        (16..=4096).contains(&p.width)
            && (16..=4096).contains(&p.height)
            && p.face_margin.is_finite()
            && (0.0..=2.0).contains(&p.face_margin)
            && p.enhance_fidelity.is_finite()
            && (0.0..=1.0).contains(&p.enhance_fidelity)
            && !p.formats.is_empty()
            && p.formats.len() <= 2
            && (p.formats.len() < 2 || p.formats[0] != p.formats[1])
            && (1024..=20_000_000).contains(&p.jpeg_max_bytes)
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(config(3000))]

        #[test]
        fn params_are_accepted_exactly_when_the_readme_allows_them(
            (obj, valid) in params_object(),
        ) {
            match accept(&obj) {
                Ok(p) => {
                    prop_assert!(valid, "accepted although the README forbids it: {:?}", obj);
                    prop_assert!(in_documented_ranges(&p), "{:?}", p);
                    // No silent clamping: what was sent is what the job gets.
                    for (name, sent) in &obj {
                        let kept = &serde_json::to_value(&p).unwrap()[name.as_str()];
                        match name.as_str() {
                            "width" | "height" | "jpeg_max_bytes" | "transparent"
                            | "oval_mask" | "enhance" | "remove_background" | "face_policy"
                            | "detector" | "segmentation_model" => {
                                prop_assert_eq!(kept, sent, "{}", name);
                            }
                            "face_margin" | "enhance_fidelity" => {
                                let want = sent.as_f64().unwrap() as f32;
                                prop_assert_eq!(kept.as_f64().unwrap() as f32, want, "{}", name);
                            }
                            _ => {}
                        }
                    }
                    // The worker reads back exactly what the API stored.
                    let stored = serde_json::to_string(&p).unwrap();
                    let read: JobParams = serde_json::from_str(&stored).unwrap();
                    prop_assert_eq!(read, p);
                }
                Err(e) => prop_assert!(!valid, "refused although the README allows it: {} ({:?})", e, obj),
            }
        }

        #[test]
        fn arbitrary_json_as_params_never_panics(
            value in prop_oneof![
                any_json(),
                proptest::collection::btree_map(
                    prop::sample::select(documented().into_iter().map(|(n, _)| n).collect::<Vec<_>>()),
                    any_json(),
                    0..6,
                )
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ],
        ) {
            if let Ok(p) = serde_json::from_value::<JobParams>(value) {
                if p.validate().is_ok() {
                    prop_assert!(in_documented_ranges(&p), "{:?}", p);
                }
            }
        }
    }
}
