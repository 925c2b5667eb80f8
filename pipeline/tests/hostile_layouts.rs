//! Unusual but valid files (CMYK, 16-bit, palette, grey, animated, other containers) and
//! every EXIF orientation, broken or oversized EXIF blocks: each must give the same face as the
//! plain photo. Successes run with [`quick`] parameters (no segmentation, tiny output).
#![allow(clippy::unwrap_used)]

mod support;

use facecraft_pipeline::decode::{decode, DecodeParams};
use image::codecs::gif::GifEncoder;
use image::{DynamicImage, Frame, ImageFormat, LumaA, Rgba, RgbaImage};

use support::*;

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
