//! What the pipeline's test suites share: loading the engines and the test photos once,
//! running `render` and checking its answer, and building inputs byte by byte (PNG chunks,
//! zlib streams, JPEG segments and scans, EXIF blocks, other formats' headers).

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;

use facecraft_contract::job::{FaceBox, Format, JobParams};
use facecraft_pipeline::decode::DecodeParams;
use facecraft_pipeline::engines::{EngineSettings, Engines};
use facecraft_pipeline::portrait::{render, Portrait};
use image::codecs::jpeg::JpegEncoder;
use image::{imageops, DynamicImage, GrayImage, ImageFormat, Luma, RgbImage, Rgba, RgbaImage};

// ---------------------------------------------------------------------------------------------
// Running the pipeline
// ---------------------------------------------------------------------------------------------

pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

pub fn engines() -> &'static Engines {
    static ENGINES: OnceLock<Engines> = OnceLock::new();
    ENGINES.get_or_init(|| {
        Engines::load(&EngineSettings::from_env_for_tests())
            .unwrap_or_else(|e| panic!("loading models (run scripts/fetch-models): {e:#}"))
    })
}

/// The shared test photo: one frontal face, about 90 px wide, in a 512×512 frame.
pub fn astronaut() -> &'static RgbaImage {
    static IMG: OnceLock<RgbaImage> = OnceLock::new();
    IMG.get_or_init(|| image::open(testdata("astronaut.png")).unwrap().to_rgba8())
}

pub fn astronaut_rgb() -> RgbImage {
    DynamicImage::ImageRgba8(astronaut().clone()).to_rgb8()
}

/// Parameters that skip what follows detection and costs time (segmentation, enhancement,
/// a large output), so a success here costs little more than the detector.
pub fn quick() -> JobParams {
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

pub fn render_with(bytes: &[u8], params: &JobParams) -> Result<Portrait, (String, String)> {
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
pub fn expect_code(what: &str, bytes: &[u8], params: &JobParams, code: &str) {
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
pub fn expect_portrait(what: &str, bytes: &[u8], params: &JobParams) -> Portrait {
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
pub fn reference_face() -> FaceBox {
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
pub fn assert_reference_face(what: &str, p: &Portrait, tolerance: f32) {
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

pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn png(img: &RgbaImage) -> Vec<u8> {
    encode(&DynamicImage::ImageRgba8(img.clone()), ImageFormat::Png)
}

pub fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&DynamicImage::ImageRgb8(img.clone()))
        .unwrap();
    out
}

/// A small deterministic byte generator (xorshift64*), so "random" inputs are the same on
/// every run.
pub struct Noise(pub u64);

impl Noise {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }
}

/// CRC-32 as PNG and ZIP use it (ISO 3309).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

pub fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}

/// A PNG from its parts: IHDR fields, the zlib stream of the filtered rows, extra chunks
/// placed before IDAT.
pub fn png_file(
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
pub fn zlib_stored(data: &[u8]) -> Vec<u8> {
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
pub struct DeflateBits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl DeflateBits {
    pub fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// Huffman codes are packed starting with their most significant bit.
    pub fn put_code(&mut self, code: u32, len: u32) {
        let reversed = (0..len).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
        self.put(reversed, len);
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A zlib stream inflating to `len` zero bytes, ~13 bits per 258 bytes: one fixed-Huffman block
/// of a literal 0 followed by length-258, distance-1 copies. The stuff decompression bombs are
/// made of.
pub fn zlib_zeros(len: usize) -> Vec<u8> {
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
pub fn black_bilevel_png(w: u32, h: u32) -> Vec<u8> {
    let row = 1 + (w as usize).div_ceil(8);
    png_file(w, h, 1, 0, &[], &zlib_zeros(row * h as usize))
}

/// A valid small PNG whose IHDR then claims `w`×`h` (CRC fixed): the header of a bomb without
/// the body.
pub fn png_header_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = png(&RgbaImage::from_pixel(40, 40, Rgba([9, 9, 9, 255])));
    out[16..20].copy_from_slice(&w.to_be_bytes());
    out[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out
}

/// An 8-bit palette PNG with a tRNS chunk: `palette` entries are RGBA.
pub fn palette_png(w: u32, h: u32, palette: &[[u8; 4]], index: impl Fn(u32, u32) -> u8) -> Vec<u8> {
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

pub fn jpeg_segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&u16::try_from(body.len() + 2).unwrap().to_be_bytes());
    out.extend_from_slice(body);
}

/// A copy of `jpeg` with an APP1 segment holding `payload` right after SOI, where cameras put
/// EXIF.
pub fn with_app1(jpeg: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    jpeg_segment(&mut out, 0xE1, payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// EXIF APP1 payload: big-endian TIFF, IFD0 with `entries` (tag, type, count, value/offset)
/// followed by `data`, which offsets may point into (it starts at 10 + 12 × entries + 4).
pub fn exif(entries: &[(u16, u16, u32, [u8; 4])], data: &[u8]) -> Vec<u8> {
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
pub fn exif_orientation(orientation: u16) -> Vec<u8> {
    let [a, b] = orientation.to_be_bytes();
    exif(&[(0x0112, 3, 1, [a, b, 0, 0])], &[])
}

/// Stores `upright` so that a viewer applying `orientation` shows it upright again.
pub fn stored_for(upright: &RgbImage, orientation: u16) -> RgbImage {
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
pub fn sof0(jpeg: &[u8]) -> usize {
    jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap()
}

/// The zigzag order of the 64 coefficients of a block, as (row, column) (ITU T.81 Figure 5).
pub fn zigzag() -> Vec<(usize, usize)> {
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
pub struct ScanBits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl ScanBits {
    pub fn put(&mut self, value: u32, count: u32) {
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

    pub fn finish(mut self) -> Vec<u8> {
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
pub fn baseline_jpeg(planes: &[GrayImage], app: &[(u8, &[u8])]) -> Vec<u8> {
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
pub fn cmyk_jpeg(img: &RgbImage) -> Vec<u8> {
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
pub fn tiff_with_tag(tiff: &[u8], tag: u16, value: u32) -> Vec<u8> {
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
pub fn vp8l_header_claiming(w: u32, h: u32) -> Vec<u8> {
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
pub fn zip_file(name: &str, data: &[u8]) -> Vec<u8> {
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

pub fn side_by_side(images: &[RgbaImage]) -> RgbaImage {
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

/// `img` turned by `deg` about its centre on a canvas of the same size (nearest pixel), mid
/// grey where the photo does not reach: a photo taken at a tilt.
pub fn turned(img: &RgbImage, deg: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (s, c) = deg.to_radians().sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let (sx, sy) = (c * dx + s * dy + cx, -s * dx + c * dy + cy);
        if sx >= 0.0 && sy >= 0.0 && (sx as u32) < w && (sy as u32) < h {
            *img.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([128, 128, 128])
        }
    })
}

pub fn scaled(img: &RgbaImage, factor: f32) -> RgbaImage {
    let (w, h) = (
        (img.width() as f32 * factor).round() as u32,
        (img.height() as f32 * factor).round() as u32,
    );
    imageops::resize(img, w, h, imageops::FilterType::CatmullRom)
}
