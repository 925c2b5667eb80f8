//! Property tests: mutated and truncated files fed to `decode`, random parameter objects to
//! `JobParams`; nothing panics and every answer is a documented one.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::OnceLock;

use facecraft_contract::job::JobParams;
use facecraft_pipeline::decode::{decode, DecodeParams};
use image::codecs::gif::GifEncoder;
use image::{imageops, DynamicImage, Frame, ImageFormat, Rgba, RgbaImage};

use support::*;

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
    /// `PROPTEST_CASES=100000 PROPTEST_RNG_SEED=$RANDOM cargo test -p facecraft-pipeline --test hostile_fuzz`.
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
                    e.code().as_str(),
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

    /// A JSON value for one parameter and whether the job parameters table (docs/api.md) allows it. Only values
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
            // A whole number written as a float is that number (JSON Schema's `integer`).
            prop_oneof![
                (16u32..=4096).prop_map(Value::from),
                (16u32..=4096).prop_map(|v| json!(f64::from(v))),
            ],
            prop_oneof![
                (0u32..16).prop_map(Value::from),
                (4097u32..=u32::MAX).prop_map(Value::from),
                (u64::from(u32::MAX) + 1..=u64::MAX).prop_map(Value::from),
                (i64::MIN..0).prop_map(Value::from),
                Just(json!(15.0)),
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
                json!(["webp"]),
                json!(["png", "jpg", "webp"]),
            ]),
            prop::sample::select(vec![
                json!([]),
                json!(["gif"]),
                json!(["PNG"]),
                json!(["png", "png"]),
                json!(["jpg", "jpeg"]),
                json!(["webp", "webp"]),
                json!(["WEBP"]),
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
                Just(json!(20_000_000)),
                Just(json!(5000.0)),
            ],
            prop_oneof![
                (0u32..1024).prop_map(Value::from),
                (20_000_001u32..=u32::MAX).prop_map(Value::from),
                (u64::from(u32::MAX) + 1..=u64::MAX).prop_map(Value::from),
                (i64::MIN..0).prop_map(Value::from),
                Just(json!(5000.5)),
                Just(json!("5000")),
                wrong_types(),
            ],
        )
    }

    fn webp_quality() -> BoxedStrategy<Tagged> {
        tagged(
            prop_oneof![
                (1u32..=100).prop_map(Value::from),
                Just(json!(100)),
                Just(json!(75.0)),
                Just(Value::Null),
            ],
            prop_oneof![
                Just(json!(0)),
                (101u32..=100_000).prop_map(Value::from),
                (i64::MIN..0).prop_map(Value::from),
                Just(json!(50.5)),
                Just(json!("80")),
                Just(json!("")),
                Just(json!({})),
                Just(json!(true)),
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

    /// Every documented parameter with its generator, in the documented order (docs/api.md).
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
            ("webp_quality", webp_quality()),
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

    /// Independent restatement of the documented ranges (docs/api.md), checked on everything accepted.
    fn in_documented_ranges(p: &JobParams) -> bool {
        (16..=4096).contains(&p.width)
            && (16..=4096).contains(&p.height)
            && p.face_margin.is_finite()
            && (0.0..=2.0).contains(&p.face_margin)
            && p.enhance_fidelity.is_finite()
            && (0.0..=1.0).contains(&p.enhance_fidelity)
            && !p.formats.is_empty()
            && p.formats.len() <= 3
            && (1..p.formats.len()).all(|i| !p.formats[..i].contains(&p.formats[i]))
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
                            "width" | "height" | "jpeg_max_bytes" => {
                                prop_assert_eq!(kept.as_f64(), sent.as_f64(), "{}", name);
                            }
                            "transparent" | "oval_mask" | "enhance" | "remove_background"
                            | "face_policy" | "detector" | "segmentation_model" => {
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
