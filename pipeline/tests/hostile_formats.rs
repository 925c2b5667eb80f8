//! Hostile and broken input at the pipeline level, before any face is looked for: bytes that
//! are not an image, formats we recognise but do not decode, truncated and corrupt files, and
//! sizes past the limits — each ends with one exact stable code, checked before pixels are
//! allocated. Every input is generated here (no binary files in git).
#![allow(clippy::unwrap_used)]

mod support;

use facecraft_pipeline::decode::{decode, DecodeParams};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

use support::*;

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
