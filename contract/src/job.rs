//! The job contract: what a client asks for, and the status record it polls.
//!
//! A job references objects in S3 and never carries image bytes, so it stays small in Redis.
//! Everything here is plain serde data; validation happens once, where a job is created.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::JobError;

/// Time-ordered job identifier (UUIDv7), so ids sort by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(value_type = String, format = "uuid", example = "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b")
)]
pub struct JobId(pub Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(s: &str) -> Option<Self> {
        Uuid::parse_str(s).ok().map(Self)
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// An object in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

/// Where results go: `{prefix}{id}/portrait.{png,jpg}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub bucket: String,
    #[serde(default = "default_output_prefix")]
    pub prefix: String,
}

pub fn default_output_prefix() -> String {
    "results/".to_owned()
}

/// An RGB colour. Accepts `"240,240,240"`, `"#f0f0f0"`, `"f0f0f0"` or `[240, 240, 240]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub [u8; 3]);

impl Rgb {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let hex = s.strip_prefix('#').unwrap_or(s);
        if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| e.to_string());
            return Ok(Self([byte(0)?, byte(2)?, byte(4)?]));
        }
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() == 3 {
            let mut rgb = [0u8; 3];
            for (slot, part) in rgb.iter_mut().zip(&parts) {
                // Digits only: `parse` alone would take a sign (`+5`), which RGB_PATTERN does not.
                *slot = part
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| part.parse::<u8>().ok())
                    .flatten()
                    .ok_or_else(|| format!("colour component `{part}` is not an integer 0-255"))?;
            }
            return Ok(Self(rgb));
        }
        Err(format!(
            "`{s}` is not a colour: use \"r,g,b\" (0-255 each) or \"#rrggbb\""
        ))
    }

    pub fn to_hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0[0], self.0[1], self.0[2])
    }
}

impl Serialize for Rgb {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rgb {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            // Numbers, not integers: JSON has one number type, and `34.0` is the integer 34 to
            // JSON Schema (and to JavaScript clients that send it so).
            Array(Vec<f64>),
        }
        match Repr::deserialize(d)? {
            Repr::Text(s) => Rgb::parse(&s).map_err(serde::de::Error::custom),
            Repr::Array(v) => {
                let channel =
                    |c: f64| (c.fract() == 0.0 && (0.0..=255.0).contains(&c)).then_some(c);
                match v.as_slice() {
                    [r, g, b] if [*r, *g, *b].iter().all(|c| channel(*c).is_some()) => {
                        // Whole numbers 0-255, checked just above.
                        Ok(Rgb([*r as u8, *g as u8, *b as u8]))
                    }
                    _ => Err(serde::de::Error::custom(
                        "a colour array needs exactly three integers 0-255",
                    )),
                }
            }
        }
    }
}

/// `formats` in the OpenAPI document: one to three formats, each once.
#[cfg(feature = "openapi")]
fn formats_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name("Format"))
        .min_items(Some(1))
        .max_items(Some(3))
        .unique_items(true)
        .build()
}

/// A `u32` from any JSON number that is one: JSON has a single number type, and `600.0` is the
/// integer 600 to JSON Schema and to clients that compute sizes in floating point.
fn whole_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = f64::deserialize(d)?;
    if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
        // Whole and in range, checked just above.
        Ok(v as u32)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a whole number 0-{}, got {v}",
            u32::MAX
        )))
    }
}

/// [`whole_u32`] for an optional quality: absent or null is `None`; `validate` checks the range.
fn whole_u8_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let Some(v) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if v.fract() == 0.0 && (0.0..=255.0).contains(&v) {
        // Whole and in range, checked just above.
        Ok(Some(v as u8))
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a whole number 1-100, got {v}"
        )))
    }
}

/// The text spellings `Rgb::parse` takes, as the OpenAPI document states them.
pub const RGB_PATTERN: &str = r"^\s*(#?[0-9A-Fa-f]{6}|0*(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\s*,\s*0*(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\s*,\s*0*(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]))\s*$";

// Hand-written: a colour is read in three spellings but always written as `[r, g, b]`.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Rgb {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let component = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(255));
        OneOfBuilder::new()
            .item(
                ArrayBuilder::new()
                    .items(component)
                    .min_items(Some(3))
                    .max_items(Some(3)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(RGB_PATTERN))
                    .description(Some("`\"r,g,b\"` (0-255 each), `\"#rrggbb\"` or `\"rrggbb\"`"))
                    .examples(["240,240,240", "#f0f0f0"]),
            )
            .description(Some(
                "An RGB colour. Requests may send `\"240,240,240\"`, `\"#f0f0f0\"`, `\"f0f0f0\"` or \
                 `[240, 240, 240]`; responses always carry `[r, g, b]`.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Rgb {}

/// Output image formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Png,
    #[serde(alias = "jpeg")]
    Jpg,
    /// WebP (with alpha when `transparent`): lossless, PNG's pixels in a smaller file, or
    /// lossy at `webp_quality`.
    Webp,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Png, Format::Jpg, Format::Webp];

    pub const fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpg => "jpg",
            Self::Webp => "webp",
        }
    }

    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    pub fn from_extension(s: &str) -> Option<Self> {
        match s {
            "png" => Some(Self::Png),
            "jpg" | "jpeg" => Some(Self::Jpg),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }
}

/// What to do when a photo holds several faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FacePolicy {
    /// Use the largest face.
    #[default]
    Largest,
    /// Fail with `multiple_faces`.
    Error,
}

/// Face detector engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// dlib HOG + linear SVM: fast on CPU, frontal faces.
    #[default]
    Hog,
    /// dlib CNN (MMOD): slower, finds more poses.
    Cnn,
    /// RetinaFace mobilenet0.25 through ONNX Runtime.
    Retinaface,
}

/// Background-removal model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SegmentationModel {
    /// U²-Net small (4.6 MB).
    #[default]
    U2netp,
    /// U²-Net full (176 MB).
    U2net,
    /// U²-Net trained on people.
    U2netHumanSeg,
}

/// A named portrait standard: a set of parameter defaults (size, framing, mask, background,
/// JPEG cap) that any parameter given alongside it overrides. The rules and their sources are
/// in the README ("Presets") and docs/api.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Active Directory `thumbnailPhoto`: 648×648, head and shoulders, JPEG ≤ 101376 bytes.
    Ad,
    /// ICAO 9303-style passport photo: 35×45 mm at 300 dpi (413×531), chin to crown 75 % of
    /// the height, plain light background, no oval.
    Passport,
    /// US visa (U.S. Department of State photo requirements): 600×600, head 60 % of the height, eyes 62.5 % from the
    /// bottom, white background, no oval.
    UsVisa,
    /// ID badge: 480×640 (3:4 portrait), head 50 % of the height, no oval.
    Badge,
}

impl Preset {
    pub const ALL: [Self; 4] = [Self::Ad, Self::Passport, Self::UsVisa, Self::Badge];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Ad => "ad",
            Self::Passport => "passport",
            Self::UsVisa => "us_visa",
            Self::Badge => "badge",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The printed height, in inches, of a preset that is a physical photo: the outputs then
    /// carry the print resolution `height / inches` (300 dpi at the preset's own size).
    pub fn print_height_in(self) -> Option<f64> {
        match self {
            Self::Passport => Some(45.0 / 25.4),
            Self::UsVisa => Some(2.0),
            Self::Ad | Self::Badge => None,
        }
    }

    /// The parameters this preset stands for; a job's own parameters override them.
    pub fn params(self) -> JobParams {
        let base = JobParams {
            preset: Some(self),
            ..JobParams::default()
        };
        match self {
            Self::Ad => JobParams {
                jpeg_max_bytes: 101_376,
                ..base
            },
            Self::Passport => JobParams {
                width: 413,
                height: 531,
                face_margin: margin_for_head_ratio(0.75),
                eye_line: 0.47,
                oval_mask: false,
                ..base
            },
            Self::UsVisa => JobParams {
                width: 600,
                height: 600,
                face_margin: margin_for_head_ratio(0.60),
                eye_line: 0.375,
                oval_mask: false,
                background: Rgb([255, 255, 255]),
                ..base
            },
            Self::Badge => JobParams {
                width: 480,
                height: 640,
                face_margin: margin_for_head_ratio(0.50),
                eye_line: 0.40,
                oval_mask: false,
                ..base
            },
        }
    }
}

/// The share of the output height the head (chin to crown) fills for a `face_margin`:
/// `1 / (1 + margin / 0.3)`, so the default margin 0.3 gives a head of half the height, 0 a
/// head filling the frame, 2 a head of 13 %.
pub fn head_ratio(face_margin: f32) -> f32 {
    1.0 / (1.0 + face_margin.max(0.0) / 0.3)
}

/// Inverse of [`head_ratio`], rounded to 4 decimals so preset values read cleanly.
fn margin_for_head_ratio(ratio: f32) -> f32 {
    ((0.3 * (1.0 / ratio - 1.0)) * 10_000.0).round() / 10_000.0
}

/// What a job does with its quality report's warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QualityPolicy {
    /// Report them with the result (default).
    #[default]
    Report,
    /// Any warning fails the job with `quality_rejected`; no portrait is written.
    Strict,
}

/// Portrait parameters. Defaults are those of the service Facecraft replaces. With `preset`,
/// the preset's values replace the defaults of the parameters not given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(default))]
#[serde(deny_unknown_fields, default, remote = "Self")]
pub struct JobParams {
    /// Named standard: `ad`, `passport`, `us_visa` or `badge` (see the README's "Presets").
    /// Its values stand in for the defaults of every parameter not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// Output width in pixels (16-4096). Default 648.
    #[cfg_attr(feature = "openapi", schema(minimum = 16, maximum = 4096))]
    #[serde(deserialize_with = "whole_u32")]
    pub width: u32,
    /// Output height in pixels (16-4096). Default 648.
    #[cfg_attr(feature = "openapi", schema(minimum = 16, maximum = 4096))]
    #[serde(deserialize_with = "whole_u32")]
    pub height: u32,
    /// Background colour, RGB in the order given. Default 240,240,240.
    pub background: Rgb,
    /// Transparent background instead of `background` (PNG keeps alpha; JPEG uses `background`).
    pub transparent: bool,
    /// Space around the head (0-2): the head, chin to crown, fills `1 / (1 + face_margin /
    /// 0.3)` of the output height. Default 0.3 (half the height).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 2))]
    pub face_margin: f32,
    /// Where the eyes sit, as a fraction of the output height from the top (0.2-0.8).
    /// Default 0.4.
    #[cfg_attr(feature = "openapi", schema(minimum = 0.2, maximum = 0.8))]
    pub eye_line: f32,
    /// Feathered oval mask around the head and shoulders. Default on.
    pub oval_mask: bool,
    /// Automatic exposure, white balance and mild sharpening. Default on.
    pub enhance: bool,
    /// Face-restoration fidelity (0 = strongest restoration, 1 = closest to input). Default 0.7.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
    pub enhance_fidelity: f32,
    /// Face restoration (GFPGAN v1.4), blended by `enhance_fidelity`. Such jobs run on the GPU
    /// lane: only workers with the restoration engine take them, and they fail with
    /// `no_gpu_worker` when none serves the lane in time. Default off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub restore: bool,
    /// Output formats, at least one of `png`, `jpg` and `webp`, each once. Default png and jpg.
    #[cfg_attr(feature = "openapi", schema(schema_with = formats_schema))]
    pub formats: Vec<Format>,
    /// Largest JPEG allowed; quality is lowered until it fits (1024-20000000).
    /// Default 101376, Active Directory's thumbnailPhoto limit.
    #[cfg_attr(feature = "openapi", schema(minimum = 1024, maximum = 20000000))]
    #[serde(deserialize_with = "whole_u32")]
    pub jpeg_max_bytes: u32,
    /// WebP quality (1-100): the `webp` output is lossy at that quality (libwebp's scale, 75 its
    /// usual default). Absent (default): lossless.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_u8_opt"
    )]
    pub webp_quality: Option<u8>,
    /// Several faces: `largest` (default) or `error`.
    pub face_policy: FacePolicy,
    /// Face detector: `hog` (default), `cnn` or `retinaface`.
    pub detector: Detector,
    /// Background-removal model: `u2netp` (default), `u2net`, `u2net_human_seg`.
    pub segmentation_model: SegmentationModel,
    /// Replace the background with `background`. Default on.
    pub remove_background: bool,
    /// `report` (default) returns the quality report's warnings with the result; `strict`
    /// fails the job with `quality_rejected` when there is any.
    pub quality: QualityPolicy,
}

// By hand around the derived code (`remote = "Self"`): a preset's values must be filled in
// before the fields' own defaults, which only the whole object can tell.
impl Serialize for JobParams {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        JobParams::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for JobParams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        match map.get("preset") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(name)) => {
                let preset = Preset::from_name(name).ok_or_else(|| {
                    D::Error::custom(format!(
                        "unknown preset `{name}`; one of ad, passport, us_visa, badge"
                    ))
                })?;
                let defaults = serde_json::to_value(preset.params()).map_err(D::Error::custom)?;
                if let serde_json::Value::Object(defaults) = defaults {
                    for (k, v) in defaults {
                        map.entry(k).or_insert(v);
                    }
                }
            }
            Some(_) => return Err(D::Error::custom("preset must be a string")),
        }
        JobParams::deserialize(serde_json::Value::Object(map)).map_err(D::Error::custom)
    }
}

impl Default for JobParams {
    fn default() -> Self {
        Self {
            width: 648,
            height: 648,
            background: Rgb([240, 240, 240]),
            transparent: false,
            preset: None,
            face_margin: 0.3,
            eye_line: 0.4,
            oval_mask: true,
            enhance: true,
            enhance_fidelity: 0.7,
            restore: false,
            formats: vec![Format::Png, Format::Jpg],
            jpeg_max_bytes: 101_376,
            webp_quality: None,
            face_policy: FacePolicy::Largest,
            detector: Detector::Hog,
            segmentation_model: SegmentationModel::U2netp,
            remove_background: true,
            quality: QualityPolicy::Report,
        }
    }
}

pub const MIN_SIDE: u32 = 16;
pub const MAX_SIDE: u32 = 4096;

/// The stream a job waits in (DESIGN §4): `gpu` for jobs with a GPU-only stage (restoration),
/// read only by workers that loaded its engine; `cpu` for everything else.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Lane {
    #[default]
    Cpu,
    Gpu,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Cpu, Lane::Gpu];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        }
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JobParams {
    /// The lane this job must run in.
    pub fn lane(&self) -> Lane {
        if self.restore {
            Lane::Gpu
        } else {
            Lane::Cpu
        }
    }

    /// Checks ranges; the message names the field and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if !(MIN_SIDE..=MAX_SIDE).contains(&v) {
                return Err(format!("{name} must be {MIN_SIDE}-{MAX_SIDE}, got {v}"));
            }
        }
        if !(self.face_margin.is_finite() && (0.0..=2.0).contains(&self.face_margin)) {
            return Err(format!("face_margin must be 0-2, got {}", self.face_margin));
        }
        if !(self.eye_line.is_finite() && (0.2..=0.8).contains(&self.eye_line)) {
            return Err(format!("eye_line must be 0.2-0.8, got {}", self.eye_line));
        }
        if !(self.enhance_fidelity.is_finite() && (0.0..=1.0).contains(&self.enhance_fidelity)) {
            return Err(format!(
                "enhance_fidelity must be 0-1, got {}",
                self.enhance_fidelity
            ));
        }
        if self.formats.is_empty() {
            return Err("formats must name at least one of png, jpg, webp".into());
        }
        let mut seen = self.formats.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.formats.len() {
            return Err("formats lists a format twice".into());
        }
        if let Some(q) = self.webp_quality {
            if !(1..=100).contains(&q) {
                return Err(format!("webp_quality must be 1-100, got {q}"));
            }
        }
        if !(1024..=20_000_000).contains(&self.jpeg_max_bytes) {
            return Err(format!(
                "jpeg_max_bytes must be 1024-20000000, got {}",
                self.jpeg_max_bytes
            ));
        }
        Ok(())
    }
}

/// A unit of work, as stored in the stream and the status hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub id: JobId,
    pub tenant: String,
    pub input: ObjectRef,
    pub params: JobParams,
    pub output: OutputSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

impl Job {
    /// Deterministic result key, so a re-run overwrites instead of duplicating.
    pub fn output_key(&self, format: Format) -> String {
        format!(
            "{}{}/portrait.{}",
            self.output.prefix,
            self.id,
            format.extension()
        )
    }
}

/// Checks an S3 bucket name against the S3 naming rules.
pub fn validate_bucket(bucket: &str) -> Result<(), String> {
    let ok_len = (3..=63).contains(&bucket.len());
    let ok_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ok_ends = bucket
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && bucket
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_ends && !bucket.contains("..") {
        Ok(())
    } else {
        Err(format!("`{bucket}` is not a valid bucket name"))
    }
}

/// Rejects keys that could escape a prefix or confuse tools that map keys to paths.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 1024 {
        return Err("object key must be 1-1024 bytes".into());
    }
    if key.starts_with('/') || key.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(format!(
            "object key `{key}` must not start with / or contain . or .. segments"
        ));
    }
    if key.chars().any(char::is_control) {
        return Err("object key must not contain control characters".into());
    }
    Ok(())
}

/// Checks an output prefix: empty, or a key-like string ending with `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    if !prefix.ends_with('/') {
        return Err(format!("output prefix `{prefix}` must end with /"));
    }
    validate_key(prefix.trim_end_matches('/'))
}

/// Lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Gave up after the delivery limit.
    Dead,
}

impl JobState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            "dead" => Self::Dead,
            _ => return None,
        })
    }

    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::Dead
        )
    }
}

/// Where a running job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    pub stage: String,
    pub percent: u8,
}

/// One stored result object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputObject {
    pub format: Format,
    pub bucket: String,
    pub key: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    /// Presigned GET URL, filled in by the API when it serves the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// An axis-aligned box in input-image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FaceBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

/// The face the portrait was built around.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FaceInfo {
    pub bbox: FaceBox,
    /// Landmark points `[x, y]` in input-image pixels (5 or 68 of them).
    pub landmarks: Vec<[f32; 2]>,
    pub score: f32,
    pub faces_found: u32,
    /// Rotation applied to level the eyes, degrees.
    pub rotation_deg: f32,
}

/// Something a person checking the portrait would object to; stable names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QualityWarning {
    /// The head is turned sideways (yaw estimate over 20°).
    TurnedHead,
    /// The face is not sharp (variance of the Laplacian on the face below the floor).
    Blurry,
    /// The face is underexposed (mean luminance low, or many pixels crushed to black).
    Dark,
    /// The face is overexposed (mean luminance high, or many pixels clipped to white).
    Overexposed,
    /// More than 2 % of the visible frame (inside the oval, when there is one) is background
    /// fill because the photo ended there.
    Padded,
    /// The face in the photo is small for the output: it was enlarged more than 2×.
    LowResolution,
    /// The background left in the frame is not uniform (only when it is kept).
    BusyBackground,
}

impl QualityWarning {
    pub fn name(self) -> &'static str {
        match self {
            Self::TurnedHead => "turned_head",
            Self::Blurry => "blurry",
            Self::Dark => "dark",
            Self::Overexposed => "overexposed",
            Self::Padded => "padded",
            Self::LowResolution => "low_resolution",
            Self::BusyBackground => "busy_background",
        }
    }
}

/// Measurements of the finished portrait (on the output pixels, with the landmarks carried
/// into the output frame); docs/pipeline.md says how each is measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QualityReport {
    /// Angle of the eye line in the output, degrees (0 = level).
    pub eye_tilt_deg: f32,
    /// Head yaw estimated from the landmarks, degrees (0 = frontal; sign: towards image right).
    pub yaw_deg: f32,
    /// Horizontal offset of the eye midpoint from the centre, % of the width (+ = right).
    pub eye_offset_pct: f32,
    /// Height of the eye line from the bottom, % of the height.
    pub eye_height_pct: f32,
    /// Head height (chin to crown) ÷ output height.
    pub head_height_ratio: f32,
    /// Share of the visible frame (inside the oval, when there is one) filled with background
    /// because the photo ended there, %.
    pub padded_pct: f32,
    /// Background uniformity, 0-1 (1 = one flat colour): 1 − standard deviation of the
    /// background's luminance ÷ 64, clamped.
    pub background_uniformity: f32,
    /// Variance of the Laplacian of the inner face's luminance on the output, scaled to a face of
    /// mean luminance 128 (`blurry` below 25).
    pub sharpness: f32,
    /// Mean luminance of the face, 0-255.
    pub face_luminance: f32,
    /// Share of face pixels crushed to black (≤ 5) or clipped to white (≥ 250), %.
    pub face_clipped_pct: f32,
    /// Output pixels per source pixel (above 1 the photo was enlarged).
    pub upscale: f32,
    /// Every warning raised, sorted; empty for a clean portrait.
    pub warnings: Vec<QualityWarning>,
}

/// What a succeeded job produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobResult {
    pub outputs: Vec<OutputObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face: Option<FaceInfo>,
    /// Milliseconds per stage, keyed by stage name.
    pub timings_ms: BTreeMap<String, u64>,
    /// Quality measurements of the portrait, with warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityReport>,
}

/// The status record clients poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobStatus {
    pub id: JobId,
    pub state: JobState,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// RFC 3339 timestamps.
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested: Option<bool>,
    pub input: ObjectRef,
    pub params: JobParams,
    pub output: OutputSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    #[serde(skip)]
    pub tenant: String,
}

impl JobStatus {
    /// The record of a job just enqueued.
    pub fn queued(job: &Job) -> Self {
        let at = rfc3339_ms(job.created_at_ms);
        Self {
            id: job.id,
            state: JobState::Queued,
            attempts: 0,
            progress: None,
            created_at: at.clone(),
            updated_at: at,
            started_at: None,
            finished_at: None,
            cancel_requested: None,
            input: job.input.clone(),
            params: job.params.clone(),
            output: job.output.clone(),
            error: None,
            result: None,
            tenant: job.tenant.clone(),
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn rfc3339_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_fills_in_what_is_not_given_and_survives_a_round_trip() {
        let p: JobParams =
            serde_json::from_str(r#"{"preset": "us_visa", "formats": ["jpg"]}"#).unwrap();
        assert_eq!((p.width, p.height), (600, 600));
        assert_eq!(p.background, Rgb([255, 255, 255]));
        assert!(!p.oval_mask);
        assert_eq!(p.formats, vec![Format::Jpg]);
        assert!((head_ratio(p.face_margin) - 0.6).abs() < 1e-3);
        p.validate().unwrap();
        // Stored and read back (stream entry, status record): the same parameters.
        let again: JobParams = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(again, p);
        // Given values win over the preset's.
        let q: JobParams =
            serde_json::from_str(r#"{"preset": "passport", "oval_mask": true}"#).unwrap();
        assert!(q.oval_mask);
        assert_eq!((q.width, q.height), (413, 531));
        for preset in Preset::ALL {
            preset.params().validate().unwrap();
            assert_eq!(Preset::from_name(preset.name()), Some(preset));
        }
    }

    #[test]
    fn bad_presets_and_quality_policies_are_refused_by_name() {
        let e = serde_json::from_str::<JobParams>(r#"{"preset": "selfie"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown preset `selfie`"), "{e}");
        let e = serde_json::from_str::<JobParams>(r#"{"preset": 3}"#).unwrap_err();
        assert!(e.to_string().contains("preset must be a string"), "{e}");
        assert!(serde_json::from_str::<JobParams>(r#"{"quality": "lenient"}"#).is_err());
        let p: JobParams =
            serde_json::from_str(r#"{"quality": "strict", "preset": null}"#).unwrap();
        assert_eq!(p.quality, QualityPolicy::Strict);
        assert_eq!(p.preset, None);
        let bad = JobParams {
            eye_line: 0.9,
            ..JobParams::default()
        };
        assert!(bad.validate().unwrap_err().contains("eye_line"));
    }

    #[test]
    fn webp_quality_is_optional_and_checked() {
        // Absent: lossless, and left out of stored jobs (older workers know no such field).
        let p: JobParams = serde_json::from_str("{}").unwrap();
        assert_eq!(p.webp_quality, None);
        assert!(!serde_json::to_string(&p).unwrap().contains("webp_quality"));
        let p: JobParams = serde_json::from_str(r#"{"webp_quality": null}"#).unwrap();
        assert_eq!(p.webp_quality, None);
        let p: JobParams = serde_json::from_str(r#"{"webp_quality": 80.0}"#).unwrap();
        assert_eq!(p.webp_quality, Some(80));
        p.validate().unwrap();
        let back: JobParams = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back.webp_quality, Some(80));
        let zero: JobParams = serde_json::from_str(r#"{"webp_quality": 0}"#).unwrap();
        assert!(zero
            .validate()
            .unwrap_err()
            .contains("webp_quality must be 1-100"));
        let high: JobParams = serde_json::from_str(r#"{"webp_quality": 101}"#).unwrap();
        assert!(high.validate().unwrap_err().contains("webp_quality"));
        for bad in [
            r#"{"webp_quality": 300}"#,
            r#"{"webp_quality": -1}"#,
            r#"{"webp_quality": 80.5}"#,
            r#"{"webp_quality": "high"}"#,
        ] {
            assert!(serde_json::from_str::<JobParams>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_margin_gives_a_head_of_half_the_height() {
        assert!((head_ratio(0.3) - 0.5).abs() < 1e-6);
        assert!((head_ratio(0.0) - 1.0).abs() < 1e-6);
        assert!(head_ratio(2.0) < 0.14);
    }

    #[test]
    fn defaults_match_the_reference_service() {
        let p: JobParams = serde_json::from_str("{}").unwrap();
        assert_eq!((p.width, p.height), (648, 648));
        assert_eq!(p.background, Rgb([240, 240, 240]));
        assert!((p.face_margin - 0.3).abs() < 1e-6);
        assert!(p.oval_mask && p.enhance && p.remove_background && !p.transparent);
        assert_eq!(p.jpeg_max_bytes, 101_376);
        assert_eq!(p.formats, vec![Format::Png, Format::Jpg]);
        p.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<JobParams>(r#"{"widht": 100}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `widht`"), "{err}");
    }

    #[test]
    fn colours_parse_in_every_spelling() {
        for text in [
            r#""10,20,30""#,
            r##""#0a141e""##,
            r#""0A141E""#,
            "[10,20,30]",
        ] {
            let c: Rgb = serde_json::from_str(text).unwrap();
            assert_eq!(c, Rgb([10, 20, 30]), "{text}");
        }
        for bad in [
            r#""256,0,0""#,
            "[1,2]",
            "[1,2,300]",
            r#""red""#,
            r##""#12345""##,
        ] {
            assert!(serde_json::from_str::<Rgb>(bad).is_err(), "{bad}");
        }
        assert_eq!(Rgb([240, 240, 240]).to_hex(), "#f0f0f0");
    }

    #[test]
    fn out_of_range_params_name_the_field() {
        let cases = [
            (r#"{"width": 0}"#, "width"),
            (r#"{"height": 5000}"#, "height"),
            (r#"{"face_margin": -0.1}"#, "face_margin"),
            (r#"{"enhance_fidelity": 1.5}"#, "enhance_fidelity"),
            (r#"{"formats": []}"#, "formats"),
            (r#"{"formats": ["png", "png"]}"#, "formats"),
            (r#"{"jpeg_max_bytes": 10}"#, "jpeg_max_bytes"),
        ];
        for (json, field) in cases {
            let p: JobParams = serde_json::from_str(json).unwrap();
            let err = p.validate().unwrap_err();
            assert!(err.contains(field), "{json}: {err}");
        }
        assert!(serde_json::from_str::<JobParams>(r#"{"formats": ["gif"]}"#).is_err());
        assert!(serde_json::from_str::<JobParams>(r#"{"detector": "magic"}"#).is_err());
    }

    #[test]
    fn keys_cannot_escape() {
        for bad in ["", "/abs", "a/../b", "..", "a/./b", "a\nb"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "uploads/x/y.jpg", "a..b/c"] {
            validate_key(good).unwrap();
        }
        for bad in ["ab", "Upper", "-lead", "trail-", "a..b", "under_score"] {
            assert!(validate_bucket(bad).is_err(), "{bad}");
        }
        validate_bucket("facecraft-test.1").unwrap();
        assert!(validate_prefix("results").is_err());
        validate_prefix("").unwrap();
        validate_prefix("results/2026/").unwrap();
    }

    #[test]
    fn output_keys_are_deterministic() {
        let job = Job {
            id: JobId::parse("01900000-0000-7000-8000-000000000000").unwrap(),
            tenant: "t".into(),
            input: ObjectRef {
                bucket: "b".into(),
                key: "k".into(),
            },
            params: JobParams::default(),
            output: OutputSpec {
                bucket: "b".into(),
                prefix: "results/".into(),
            },
            idempotency_key: None,
            created_at_ms: 0,
        };
        assert_eq!(
            job.output_key(Format::Jpg),
            "results/01900000-0000-7000-8000-000000000000/portrait.jpg"
        );
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
