//! From input bytes to encoded portraits: the stages of DESIGN §6 in order, each timed and
//! reported. Pure CPU work; callers run it on a blocking thread.
//!
//! decode → detect → landmarks → align → crop → segment → enhance → compose → encode.
//! Segmentation runs on the head-and-shoulders crop rather than the whole photo: U²-Net sees
//! 320×320 pixels, so giving it the person instead of a wide scene keeps the matte sharp.

use std::time::Instant;

use facecraft_contract::job::{
    head_ratio, Detector, FaceBox, FaceInfo, FacePolicy, Format, JobParams, QualityPolicy,
    QualityReport, QualityWarning,
};
use facecraft_contract::ErrorCode;
use image::buffer::ConvertBuffer;
use image::imageops;
use image::{RgbImage, RgbaImage};

use std::borrow::Cow;

use crate::align::{self, Affine};
use crate::compose::{self, Background, ComposeParams};
use crate::confirm::{self, ConfirmParams};
use crate::crop::{CropError, CropParams};
use crate::decode::{self, DecodeError, DecodeParams};
use crate::encode::{self, EncodeError, JpegParams};
use crate::engines::Engines;
use crate::enhance::{self, EnhanceError, EnhanceParams};
use crate::face::{Detection, EngineError, FaceDetector, FaceLandmarks, Landmarker, Rect};
use crate::frame::{self, Frame, Framing, Head};
use crate::matte::{self, CleanParams};
use crate::quality::{self, QualityParams};
use crate::resize::{self, Filter};
use crate::restore::{self, RestoreError, RestoreParams};

/// A stage boundary, with the share of the work done when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Decode,
    Detect,
    Landmarks,
    Align,
    Crop,
    Segment,
    Enhance,
    Restore,
    Compose,
    Encode,
}

impl Stage {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Detect => "detect",
            Self::Landmarks => "landmarks",
            Self::Align => "align",
            Self::Crop => "crop",
            Self::Segment => "segment",
            Self::Enhance => "enhance",
            Self::Restore => "restore",
            Self::Compose => "compose",
            Self::Encode => "encode",
        }
    }

    pub const fn percent(self) -> u8 {
        match self {
            Self::Decode => 10,
            Self::Detect => 20,
            Self::Landmarks => 35,
            Self::Align => 40,
            Self::Crop => 45,
            Self::Segment => 50,
            Self::Enhance => 70,
            Self::Restore => 72,
            Self::Compose => 75,
            Self::Encode => 80,
        }
    }
}

/// One encoded output.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub format: Format,
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Everything the pipeline produced.
#[derive(Debug, Clone)]
pub struct Portrait {
    pub outputs: Vec<Rendered>,
    pub face: Option<FaceInfo>,
    /// Measurements of the output, with warnings.
    pub quality: Option<QualityReport>,
    /// Milliseconds per stage, in stage order.
    pub timings: Vec<(&'static str, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("no face was found in the image")]
    NoFace,
    #[error("{0} faces were found; the job asks for exactly one (face_policy=error)")]
    MultipleFaces(usize),
    #[error("the face is cut by the photo's border ({0:.0} % of it is outside the photo)")]
    FaceCutOff(f32),
    #[error("the portrait fails the quality check (quality=strict): {}", names(.0))]
    QualityRejected(Vec<QualityWarning>),
    #[error(transparent)]
    Crop(#[from] CropError),
    #[error(transparent)]
    Enhance(#[from] EnhanceError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Compose(#[from] compose::ComposeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("cancelled")]
    Cancelled,
}

impl RenderError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Decode(e) => e.code(),
            Self::Engine(e) => e.code(),
            Self::NoFace => ErrorCode::NoFaceDetected,
            Self::MultipleFaces(_) => ErrorCode::MultipleFaces,
            Self::FaceCutOff(_) => ErrorCode::FaceCutOff,
            Self::QualityRejected(_) => ErrorCode::QualityRejected,
            Self::Crop(e) => e.code(),
            Self::Enhance(e) => e.code(),
            Self::Restore(e) => e.code(),
            Self::Compose(e) => e.code(),
            Self::Encode(e) => e.code(),
            // A cancelled render never reaches a job record: the runner maps it first.
            Self::Cancelled => ErrorCode::Internal,
        }
    }
}

/// Detection runs on a copy no larger than this (longest side): detectors cost time per
/// pixel, and a face too small to find at this size is too small for a portrait anyway.
const DETECT_MAX_SIDE: u32 = 1600;
/// Rolls tried, in order, when nothing is found upright: frontal detectors (dlib HOG is
/// trained on faces within about ±15° of roll) miss more tilted faces, and a photo whose
/// EXIF orientation was stripped (or never written) arrives a quarter or half turn off.
const RETRY_ROLLS_DEG: [f32; 7] = [-25.0, 25.0, -45.0, 45.0, 90.0, -90.0, 180.0];
/// Roll, in degrees, from which the landmarks are found again on a level copy of the face:
/// below it (the range HOG itself is trained on) the shape predictor is as good as level.
const LEVEL_REFINE_DEG: f32 = 15.0;
/// RetinaFace score from which a face it alone found (no dlib detector agreeing) counts as
/// human. Measured on the test photos and
/// their variants (turned, scaled, small): human faces 0.995-0.9997; a cat's face, found
/// only in turned copies of an enlarged photo, 0.84-0.93; everything else under 0.15.
const MIN_HUMAN_SCORE: f32 = 0.95;
/// Tilt measured on the drawn portrait from which it is drawn again, levelled: a quarter of
/// the 1.5° a person notices, and above the spread of one averaged measurement.
const RELEVEL_MIN_DEG: f32 = 0.4;
/// Inter-ocular distance at which the face is measured again: HOG still finds the face (about
/// 140 px wide, over its 80-px window) and seven averaged 5-point fits are good to well under
/// a degree.
const RELEVEL_IOD_PX: f64 = 60.0;
/// Share of the face (its ellipse, brows to chin) that may lie beyond the photo's border
/// before the face counts as cut off: a few percent forgives a chin or cheek line that
/// touches the edge.
const MAX_FACE_OUTSIDE: f64 = 0.05;
/// Oval feather as a share of the shorter output side: wide enough to look soft on a
/// 648-px portrait (26 px), narrow enough to keep the shoulders.
const OVAL_FEATHER: f32 = 0.04;

/// A confirmed face: its box as the detector saw it (centre in photo pixels, size in the
/// detector's own upright frame), and landmarks in photo pixels.
#[derive(Debug, Clone)]
struct Face {
    center: [f32; 2],
    width: f32,
    height: f32,
    score: f32,
    landmarks: FaceLandmarks,
}

impl Face {
    fn rect_at(&self, center: [f32; 2]) -> Rect {
        Rect {
            x: center[0] - self.width / 2.0,
            y: center[1] - self.height / 2.0,
            width: self.width,
            height: self.height,
        }
    }
}

/// Runs the pipeline. `on_stage` is called at each stage boundary and returns `false` to stop
/// (the job was cancelled).
pub fn render(
    bytes: &[u8],
    params: &JobParams,
    limits: &DecodeParams,
    engines: &Engines,
    on_stage: &mut dyn FnMut(Stage) -> bool,
) -> Result<Portrait, RenderError> {
    let mut timings: Vec<(&'static str, u64)> = Vec::new();
    let mut clock: Option<(Stage, Instant)> = None;
    let mut enter = |stage: Stage, timings: &mut Vec<(&'static str, u64)>| {
        if let Some((prev, t)) = clock.take() {
            timings.push((prev.name(), t.elapsed().as_millis() as u64));
        }
        if !on_stage(stage) {
            return Err(RenderError::Cancelled);
        }
        clock = Some((stage, Instant::now()));
        Ok(())
    };

    // A worker without the engine must never take such a job (the GPU lane routes it away);
    // checked before any work, so a misrouted job fails at once and says why.
    let restorer = if params.restore {
        Some(engines.restorer()?)
    } else {
        None
    };

    enter(Stage::Decode, &mut timings)?;
    let decoded = decode::decode(bytes, limits)?;
    let photo = decoded.image;

    enter(Stage::Detect, &mut timings)?;
    // Flattened onto grey, so transparent pixels hide what they cover from the detectors:
    // a face nobody can see must not become the portrait.
    let rgb = compose::flatten(&photo, [128, 128, 128]);
    let detector = engines.detector(params.detector)?;
    let (faces_found, face) = find_face(&rgb, detector, engines, params, &mut |s| {
        enter(s, &mut timings)
    })?;

    enter(Stage::Align, &mut timings)?;
    // The face passed the plausibility checks in the frame it was found in (a turned copy
    // included), so its landmarks are trusted at any roll: a face at 50° or on its side must
    // come out level, not left as it is. Only the windows needed are turned, never the photo.
    let roll = align::eye_angle(face.landmarks.eye_left, face.landmarks.eye_right);
    let roll = if roll.is_finite() { roll } else { 0.0 };
    let eye = midpoint(face.landmarks.eye_left, face.landmarks.eye_right).map(f64::from);
    let first_turn = Affine::rotation_about(eye, -f64::from(roll));
    // The landmarks were found on the photo as it was (tilted, perhaps small): found again on
    // the face turned level they are more exact, and any tilt left is taken out now.
    let (to_aligned, measured, tilt) = relevel(&rgb, &first_turn, &face, engines)?;
    // The flattened copy served the detectors only: free it before segmentation, the stage
    // that needs the most memory (60 MB for a 20-megapixel photo).
    drop(rgb);
    let rotation = -roll - tilt;
    let to_photo = to_aligned.inverse().unwrap_or_default();
    let lm = to_aligned.apply_landmarks(&face.landmarks);
    let iod = f64::from(dist(lm.eye_left, lm.eye_right));
    let min_face = CropParams::default().min_face_px;
    if face.width < min_face || face.height < min_face {
        return Err(CropError::FaceTooSmall {
            width: face.width,
            height: face.height,
            min: min_face,
        }
        .into());
    }
    let (pw, ph) = (f64::from(photo.width()), f64::from(photo.height()));
    let on_photo = |p: [f64; 2]| {
        let [x, y] = to_photo.apply_f64(p);
        x >= 0.0 && y >= 0.0 && x <= pw && y <= ph
    };
    let estimate = Head::estimate(eye, iod);
    let outside = frame::face_outside_share(&estimate, on_photo);
    if outside > MAX_FACE_OUTSIDE {
        return Err(RenderError::FaceCutOff(100.0 * outside as f32));
    }

    enter(Stage::Crop, &mut timings)?;
    let framing = Framing {
        width: params.width,
        height: params.height,
        head_ratio: f64::from(head_ratio(params.face_margin)),
        eye_line: f64::from(params.eye_line),
    };
    let first = Frame::place(&estimate, &framing);
    let photo_rect = Rect {
        x: 0.0,
        y: 0.0,
        width: photo.width() as f32,
        height: photo.height() as f32,
    };
    let photo_aligned = to_aligned.apply_rect(&photo_rect);
    // Work at the output's resolution, never above the photo's own.
    let work_scale = first.scale.min(1.0);
    let window = if params.remove_background {
        frame::intersect(&frame::context_window(&estimate, &first), &photo_aligned)
    } else {
        None
    };
    let needed = window.unwrap_or_else(|| first.rect());
    let source = Source::new(&photo, &to_photo.apply_rect(&needed), work_scale);

    enter(Stage::Segment, &mut timings)?;
    let (head, segmented) = match window {
        Some(win) => {
            let (head, matte) = segment_window(
                &source,
                &win,
                work_scale,
                &to_photo,
                &to_aligned,
                &face,
                &estimate,
                params,
                engines,
            )?;
            (head, Some((win, matte)))
        }
        None => (estimate, None),
    };
    enter(Stage::Enhance, &mut timings)?;
    let frame = Frame::place(&head, &framing);
    let to_frame = Affine::scale_then_translate(1.0 / frame.scale, frame.x, frame.y);
    // Output pixels → the window's pixels, for the matte (through the photo, so a later
    // change of the rotation carries over).
    let window_from_photo = segmented.as_ref().map(|(win, _)| {
        to_aligned.then(&Affine::scale_then_translate(
            work_scale,
            -f64::from(win.x) * work_scale,
            -f64::from(win.y) * work_scale,
        ))
    });
    let draw = |to_aligned: &Affine| {
        let to_photo = to_aligned.inverse().unwrap_or_default();
        let out_to_photo = to_frame.then(&to_photo);
        let mut portrait = align::warp(
            &source.image,
            params.width,
            params.height,
            &out_to_photo.then(&source.from_photo),
        );
        let beyond_photo: Vec<bool> = portrait.pixels().map(|p| p.0[3] < 128).collect();
        let matte = match (&segmented, &window_from_photo) {
            (Some((_, matte)), Some(to_window)) => {
                let out_to_window = out_to_photo.then(to_window);
                let mut matte =
                    align::warp_gray(matte, params.width, params.height, &out_to_window);
                let eye_out = to_frame
                    .inverse()
                    .unwrap_or_default()
                    .apply_f64(to_aligned.apply_f64(eye));
                let (ox, oy) = (
                    eye_out[0].clamp(0.0, f64::from(params.width - 1)) as u32,
                    (eye_out[1] + 0.5 * iod * frame.scale).clamp(0.0, f64::from(params.height - 1))
                        as u32,
                );
                matte::keep_connected(&mut matte, [ox, oy]);
                for (p, m) in portrait.pixels_mut().zip(matte.pixels()) {
                    p.0[3] = ((u16::from(p.0[3]) * u16::from(m.0[0]) + 127) / 255) as u8;
                }
                let reach = (params.width.min(params.height) as usize / 100).max(3);
                matte::decontaminate(&mut portrait, reach);
                Some(matte)
            }
            _ => None,
        };
        let to_output = to_aligned.then(&Affine::scale_then_translate(
            frame.scale,
            -frame.x * frame.scale,
            -frame.y * frame.scale,
        ));
        let planned = to_output.apply_landmarks(&face.landmarks);
        let before = quality::face_stats(&portrait, &planned);
        if params.enhance {
            enhance::enhance(&mut portrait, matte.as_ref(), &EnhanceParams::default())?;
        }
        Ok::<_, RenderError>(Drawn {
            portrait,
            beyond_photo,
            matte,
            planned,
            before,
        })
    };
    let drawn = draw(&to_aligned)?;
    let Drawn {
        mut portrait,
        beyond_photo,
        matte,
        before,
        planned,
        ..
    } = drawn;
    // The report's eyes: those found on the levelled face, carried into the output.
    let measured = measured.map_or(planned, |lm| {
        let aligned_to_output = Affine::scale_then_translate(
            frame.scale,
            -frame.x * frame.scale,
            -frame.y * frame.scale,
        );
        aligned_to_output.apply_landmarks(&lm)
    });
    if let Some(restorer) = restorer {
        enter(Stage::Restore, &mut timings)?;
        restore::restore(
            &mut portrait,
            measured.eye_left,
            measured.eye_right,
            restorer,
            &RestoreParams {
                fidelity: params.enhance_fidelity,
            },
        )?;
    }

    enter(Stage::Compose, &mut timings)?;
    let background = if params.transparent {
        Background::Transparent
    } else {
        Background::Color(params.background.0)
    };
    let compose_params = ComposeParams {
        width: params.width,
        height: params.height,
        background,
    };
    let mut canvas = compose::letterbox(&portrait, &compose_params);
    let oval = params.oval_mask.then(|| {
        let feather = OVAL_FEATHER * params.width.min(params.height) as f32;
        compose::oval_mask(params.width, params.height, feather)
    });
    if let Some(mask) = &oval {
        canvas = compose::apply_mask(&canvas, mask, background)?;
    }
    // Fill counts where it shows: outside the oval everything is background anyway.
    let padded_pixels = match &oval {
        Some(mask) => beyond_photo
            .iter()
            .zip(mask.pixels())
            .filter(|(b, m)| **b && m.0[0] >= 128)
            .count(),
        None => beyond_photo.iter().filter(|b| **b).count(),
    } as u64;
    let report = quality::measure(
        &canvas,
        &quality::Measured {
            landmarks: &measured,
            head_height: (head.height() * frame.scale) as f32,
            padded_pixels,
            upscale: frame.scale as f32,
            matte: matte.as_ref(),
            before: Some(before),
        },
        &QualityParams::default(),
    );
    tracing::debug!(?report, "quality");
    if params.quality == QualityPolicy::Strict && !report.warnings.is_empty() {
        return Err(RenderError::QualityRejected(report.warnings));
    }

    enter(Stage::Encode, &mut timings)?;
    let outputs = encode_all(&canvas, params)?;
    if let Some((prev, t)) = clock.take() {
        timings.push((prev.name(), t.elapsed().as_millis() as u64));
    }

    let half = |v: f32| v / 2.0;
    Ok(Portrait {
        outputs,
        face: Some(FaceInfo {
            bbox: FaceBox {
                x: face.center[0] - half(face.width),
                y: face.center[1] - half(face.height),
                width: face.width,
                height: face.height,
            },
            landmarks: face.landmarks.points.clone(),
            score: face.score,
            faces_found,
            rotation_deg: rotation,
        }),
        quality: Some(report),
        timings,
    })
}

/// One drawing of the portrait at a given rotation, before enhancement and composition.
struct Drawn {
    /// Output-sized, alpha = photo coverage × matte.
    portrait: RgbaImage,
    /// Output pixels beyond the photo.
    beyond_photo: Vec<bool>,
    /// The subject's matte at output size, when the background is removed.
    matte: Option<image::GrayImage>,
    /// The face's landmarks carried into the output.
    planned: FaceLandmarks,
    /// The face measured before enhancement.
    before: quality::FaceStats,
}

/// The pixels the portrait is sampled from: the photo itself, or, when the output is much
/// smaller than the photo, the region needed shrunk with an area filter first (bilinear
/// sampling alone would alias past a 2× reduction).
struct Source<'a> {
    image: Cow<'a, RgbaImage>,
    /// Photo pixel coordinates → `image` coordinates.
    from_photo: Affine,
}

impl<'a> Source<'a> {
    fn new(photo: &'a RgbaImage, region: &Rect, scale: f64) -> Self {
        let whole = Self {
            image: Cow::Borrowed(photo),
            from_photo: Affine::IDENTITY,
        };
        if scale >= 0.5 || !scale.is_finite() || scale <= 0.0 {
            return whole;
        }
        let (pw, ph) = photo.dimensions();
        // The region, a pixel wider for the bilinear taps, on whole pixels inside the photo.
        let x0 = (region.x - 1.0).floor().clamp(0.0, pw as f32) as u32;
        let y0 = (region.y - 1.0).floor().clamp(0.0, ph as f32) as u32;
        let x1 = (region.right() + 1.0).ceil().clamp(0.0, pw as f32) as u32;
        let y1 = (region.bottom() + 1.0).ceil().clamp(0.0, ph as f32) as u32;
        if x1 <= x0 || y1 <= y0 {
            return whole;
        }
        // Shrink to twice the working scale: the warp then reduces by 2× at most.
        let f = 2.0 * scale;
        let (w, h) = (
            ((f64::from(x1 - x0) * f).round() as u32).max(1),
            ((f64::from(y1 - y0) * f).round() as u32).max(1),
        );
        let (fx, fy) = (
            f64::from(w) / f64::from(x1 - x0),
            f64::from(h) / f64::from(y1 - y0),
        );
        Self {
            image: Cow::Owned(resize::rgba_region_premultiplied(
                photo,
                [x0, y0, x1 - x0, y1 - y0],
                w,
                h,
                // The letterbox's rule: an area filter from 2× down, bicubic above.
                if 2 * w <= x1 - x0 && 2 * h <= y1 - y0 {
                    Filter::Triangle
                } else {
                    Filter::CatmullRom
                },
            )),
            from_photo: Affine {
                m: [
                    [fx, 0.0, -f64::from(x0) * fx],
                    [0.0, fy, -f64::from(y0) * fy],
                ],
            },
        }
    }
}

/// Background removal on the context window `win` (aligned coordinates) at `scale` working
/// pixels per aligned pixel: the matte, cleaned, in window pixels, and the head with its
/// crown measured on it.
#[allow(clippy::too_many_arguments)]
fn segment_window(
    source: &Source<'_>,
    win: &Rect,
    scale: f64,
    to_photo: &Affine,
    to_aligned: &Affine,
    face: &Face,
    estimate: &Head,
    params: &JobParams,
    engines: &Engines,
) -> Result<(Head, image::GrayImage), RenderError> {
    let (ww, wh) = (
        ((f64::from(win.width) * scale).ceil() as u32).max(1),
        ((f64::from(win.height) * scale).ceil() as u32).max(1),
    );
    let to_win = Affine::scale_then_translate(1.0 / scale, f64::from(win.x), f64::from(win.y));
    let back = to_win.then(to_photo).then(&source.from_photo);
    // Where the photo is: the model must not see its border (or a turned photo's corners) as
    // an object, so it gets the photo's edge pixels continued outward instead.
    let mut pixels = align::warp_clamped(&source.image, ww, wh, &back);
    let rgb = compose::flatten(&pixels, [128, 128, 128]);
    // Coverage: a pixel whose centre falls beyond the photo holds a continued edge, not photo.
    let (sw, sh) = (
        f64::from(source.image.width()),
        f64::from(source.image.height()),
    );
    for (x, y, p) in pixels.enumerate_pixels_mut() {
        let [sx, sy] = back.apply_f64([f64::from(x) + 0.5, f64::from(y) + 0.5]);
        if !(sx >= 0.0 && sy >= 0.0 && sx <= sw && sy <= sh) {
            p.0[3] = 0;
        }
    }
    let segmenter = engines.segmenter(params.segmentation_model)?;
    let mut matte = segmenter.matte(&rgb)?;
    // Beyond the photo there is nothing to keep.
    for (m, p) in matte.pixels_mut().zip(pixels.pixels()) {
        m.0[0] = ((u16::from(m.0[0]) * u16::from(p.0[3]) + 127) / 255) as u8;
    }
    let from_aligned = to_win.inverse().unwrap_or_default();
    let window_px = |p: [f64; 2]| from_aligned.apply_f64(p);
    // The face itself is never background: U²-Net sometimes fades pale or side-lit skin,
    // which would wash the face out of the portrait.
    let face_rect = from_aligned.apply_rect(&face.rect_at(to_aligned.apply(face.center)));
    protect_face(&mut matte, &face_rect);
    let [sx, sy] = window_px([estimate.eye[0], estimate.eye[1] + 0.5 * estimate.iod]);
    let seed = [
        sx.clamp(0.0, f64::from(ww - 1)) as u32,
        sy.clamp(0.0, f64::from(wh - 1)) as u32,
    ];
    let luma: image::GrayImage = rgb.convert();
    let [ex, ey] = window_px(estimate.eye);
    matte::limit_to_person(
        &mut matte,
        [ex as f32, ey as f32],
        (estimate.iod * scale) as f32,
    );
    matte::clean(&mut matte, &luma, seed, &CleanParams::default());
    let crown = matte::crown_row(
        &matte,
        ex as f32,
        ey as f32,
        (0.5 * estimate.iod * scale) as f32,
    )
    .map(|row| f64::from(row) / scale + f64::from(win.y));
    let head = crown.map_or(*estimate, |c| estimate.with_measured_crown(c));
    Ok((head, matte))
}

/// The face's landmarks measured again on `rgb` (a levelled window of the face), near the
/// `planned` ones; `None` when no landmark model is loaded or no fit is plausible.
///
/// The shape predictor is trained on the boxes of dlib's own detector and its eye points
/// move by a degree or two with the box: HOG's box on this window is used, and the
/// detector's own box when HOG finds nothing here.
fn measure_landmarks(
    rgb: &RgbImage,
    planned: &FaceLandmarks,
    face_box: &Rect,
    engines: &Engines,
) -> Result<Option<FaceLandmarks>, RenderError> {
    let Some(lm) = engines.landmarker() else {
        return Ok(None);
    };
    let iod = dist(planned.eye_left, planned.eye_right).max(1.0);
    // HOG's box on this levelled window first (the boxes the shape predictor was trained on);
    // the detector's own box, levelled, when HOG does not find the face here.
    let mut boxes = Vec::new();
    if let Ok(hog) = engines.detector(Detector::Hog) {
        let mid = midpoint(planned.eye_left, planned.eye_right);
        let nearest = hog.detect(rgb)?.into_iter().min_by(|a, b| {
            let d = |r: &Rect| {
                let (cx, cy) = r.center();
                (cx - mid[0]).hypot(cy - mid[1])
            };
            d(&a.bbox).total_cmp(&d(&b.bbox))
        });
        boxes.extend(nearest.map(|d| d.bbox));
    }
    boxes.push(*face_box);
    // The first box that gives plausible landmarks, measured at a few sizes and offsets
    // around it and averaged: one 5-point fit moves the eyes by a degree or two with the box.
    for rect in boxes {
        let found = lm.landmarks(rgb, &rect)?;
        let agrees = |f: &FaceLandmarks| {
            dist(f.eye_left, planned.eye_left) < 0.25 * iod
                && dist(f.eye_right, planned.eye_right) < 0.25 * iod
        };
        if !(agrees(&found) && confirm::plausible(&rect, &found, &ConfirmParams::default()).is_ok())
        {
            continue;
        }
        let mut fits = vec![found];
        for (scale, dx, dy) in BOX_JITTER {
            let (cx, cy) = rect.center();
            let (w, h) = (rect.width * scale, rect.height * scale);
            let jittered = Rect {
                x: cx - w / 2.0 + dx * rect.width,
                y: cy - h / 2.0 + dy * rect.height,
                width: w,
                height: h,
            };
            let f = lm.landmarks(rgb, &jittered)?;
            if agrees(&f) {
                fits.push(f);
            }
        }
        let n = fits.len() as f32;
        let mean = |pick: fn(&FaceLandmarks) -> [f32; 2]| {
            let s = fits
                .iter()
                .map(pick)
                .fold([0.0, 0.0], |a, p| [a[0] + p[0], a[1] + p[1]]);
            [s[0] / n, s[1] / n]
        };
        let points = (0..fits[0].points.len())
            .map(|i| {
                let s = fits
                    .iter()
                    .filter_map(|f| f.points.get(i))
                    .fold([0.0, 0.0], |a, p| [a[0] + p[0], a[1] + p[1]]);
                [s[0] / n, s[1] / n]
            })
            .collect();
        return Ok(Some(FaceLandmarks {
            eye_left: mean(|f| f.eye_left),
            eye_right: mean(|f| f.eye_right),
            nose: mean(|f| f.nose),
            points,
        }));
    }
    Ok(None)
}

/// The face's landmarks found again on a window of the photo turned by `turn` (photo →
/// aligned) — the face level, the inter-ocular distance brought to [`RELEVEL_IOD_PX`] — and `turn`
/// corrected by the tilt they still show when it is worth it: the turn to use, the landmarks
/// in its aligned coordinates (`None` when no plausible fit was found) and the tilt taken out.
fn relevel(
    photo: &RgbImage,
    turn: &Affine,
    face: &Face,
    engines: &Engines,
) -> Result<(Affine, Option<FaceLandmarks>, f32), RenderError> {
    let unchanged = Ok((*turn, None, 0.0));
    if engines.landmarker().is_none() {
        return unchanged;
    }
    let aligned = turn.apply_landmarks(&face.landmarks);
    let iod = f64::from(dist(aligned.eye_left, aligned.eye_right));
    if !(iod.is_finite() && iod >= 4.0) {
        return unchanged;
    }
    let m = (RELEVEL_IOD_PX / iod).clamp(0.25, 4.0);
    let [ex, ey] = midpoint(aligned.eye_left, aligned.eye_right).map(f64::from);
    // The face (about 2.3 iod square, a third above the eyes) and a margin for HOG's window.
    let (wx, wy) = (ex - 2.0 * iod, ey - 1.8 * iod);
    let (ww, wh) = ((4.0 * iod * m).ceil() as u32, (4.4 * iod * m).ceil() as u32);
    let to_window = turn.then(&Affine::scale_then_translate(m, -wx * m, -wy * m));
    let Some(back) = to_window.inverse() else {
        return unchanged;
    };
    let window = sample(photo, ww, wh, &back);
    let planned = to_window.apply_landmarks(&face.landmarks);
    // The detector's box, levelled: same size, centre carried along.
    let [cx, cy] = to_window.apply(face.center);
    let (bw, bh) = (face.width * m as f32, face.height * m as f32);
    let face_box = Rect {
        x: cx - bw / 2.0,
        y: cy - bh / 2.0,
        width: bw,
        height: bh,
    };
    let Some(found) = measure_landmarks(&window, &planned, &face_box, engines)? else {
        return unchanged;
    };
    let found = Affine::scale_then_translate(1.0 / m, wx, wy).apply_landmarks(&found);
    let tilt = align::eye_angle(found.eye_left, found.eye_right);
    if tilt.abs() > RELEVEL_MIN_DEG && tilt.abs() < 10.0 {
        let fix = Affine::rotation_about([ex, ey], -f64::from(tilt));
        Ok((turn.then(&fix), Some(fix.apply_landmarks(&found)), tilt))
    } else {
        Ok((*turn, Some(found), 0.0))
    }
}

/// Box variations for [`measure_landmarks`]: (scale, x shift, y shift) as shares of the box.
const BOX_JITTER: [(f32, f32, f32); 6] = [
    (0.92, 0.0, 0.0),
    (1.08, 0.0, 0.0),
    (1.0, -0.04, 0.0),
    (1.0, 0.04, 0.0),
    (1.0, 0.0, -0.04),
    (1.0, 0.0, 0.04),
];

fn names(warnings: &[QualityWarning]) -> String {
    warnings
        .iter()
        .map(|w| w.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Raises the matte to opaque inside an ellipse inscribed in the face box (slightly smaller,
/// so hair and cheeks at the box edge still follow the model).
fn protect_face(matte: &mut image::GrayImage, face: &Rect) {
    let (cx, cy) = face.center();
    let (ax, ay) = (face.width * 0.45, face.height * 0.5);
    if ax < 1.0 || ay < 1.0 {
        return;
    }
    for (x, y, p) in matte.enumerate_pixels_mut() {
        let dx = (x as f32 + 0.5 - cx) / ax;
        let dy = (y as f32 + 0.5 - cy) / ay;
        let rho = (dx * dx + dy * dy).sqrt();
        // Opaque inside 0.75 of the ellipse, fading out smoothly by its edge, so no seam shows.
        let t = ((1.0 - rho) / 0.25).clamp(0.0, 1.0);
        let floor = (t * t * (3.0 - 2.0 * t) * 255.0).round() as u8;
        p.0[0] = p.0[0].max(floor);
    }
}

fn midpoint(a: [f32; 2], b: [f32; 2]) -> [f32; 2] {
    [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]
}

/// Detect + landmarks + confirm, trying harder before giving up: the requested detector on
/// the photo, then the other loaded detectors, then the photo turned by a few rolls. A face
/// counts only if its landmarks have plausible eye/nose geometry, so clutter that fools a
/// detector does not become a confident wrong crop.
fn find_face(
    rgb: &RgbImage,
    detector: &dyn FaceDetector,
    engines: &Engines,
    params: &JobParams,
    enter: &mut dyn FnMut(Stage) -> Result<(), RenderError>,
) -> Result<(u32, Face), RenderError> {
    let scale = (DETECT_MAX_SIDE as f32 / rgb.width().max(rgb.height()) as f32).min(1.0);
    let small: Cow<'_, RgbImage> = if scale < 1.0 {
        let (w, h) = (
            ((rgb.width() as f32 * scale).round() as u32).max(1),
            ((rgb.height() as f32 * scale).round() as u32).max(1),
        );
        Cow::Owned(resize::rgb(rgb, w, h, Filter::Triangle))
    } else {
        Cow::Borrowed(rgb)
    };

    let mut detectors: Vec<(Detector, &dyn FaceDetector)> = vec![(params.detector, detector)];
    detectors.extend(engines.other_detectors(params.detector));
    // dlib's detectors give no confidence, and HOG fires on face-like clutter (a round mission
    // patch with two dark spots passes every geometry check). RetinaFace, trained on real
    // faces and calibrated, must agree before a dlib detection counts.
    let verifier = engines.detector(Detector::Retinaface).ok();
    let min_face_px = CropParams::default().min_face_px;
    let mut landmarks_entered = false;
    let mut attempt = |img: &RgbImage,
                       kind: Detector,
                       det: &dyn FaceDetector,
                       back: Option<Affine>|
     -> Result<Vec<Face>, RenderError> {
        let found = det.detect(img)?;
        if !landmarks_entered {
            enter(Stage::Landmarks)?;
            landmarks_entered = true;
        }
        let second_opinion = match (kind, verifier) {
            (Detector::Retinaface, _) | (_, None) => None,
            (_, Some(v)) if !found.is_empty() => Some(v.detect(img)?),
            _ => None,
        };
        let mut faces = Vec::new();
        for d in found {
            // RetinaFace alone must be sure: animal faces (a cat in a turned copy) reach 0.84-0.93,
            // human faces 0.995 and more.
            // (A face too small for a portrait keeps RetinaFace's own threshold: it fails with
            // face_too_small either way, which tells the user what to do.)
            let portrait_sized = d.bbox.width.min(d.bbox.height) / scale >= min_face_px;
            if kind == Detector::Retinaface && d.score < MIN_HUMAN_SCORE && portrait_sized {
                tracing::debug!(
                    score = d.score,
                    "detection rejected: RetinaFace is not sure enough"
                );
                continue;
            }
            if let Some(face) = confirm_face(img, &d, engines)? {
                if let Some(others) = &second_opinion {
                    // Two detectors agreeing is evidence enough: RetinaFace's own threshold.
                    if !others.iter().any(|o| same_face(&face, o)) {
                        tracing::debug!(bbox = ?d.bbox, "detection rejected: RetinaFace sees no face there");
                        continue;
                    }
                }
                let face = match &back {
                    Some(t) => Face {
                        center: t.apply(face.center),
                        landmarks: t.apply_landmarks(&face.landmarks),
                        ..face
                    },
                    None => face,
                };
                faces.push(face);
            }
        }
        Ok(faces)
    };

    let mut faces = Vec::new();
    'search: for (kind, det) in &detectors {
        faces = attempt(&small, *kind, *det, None)?;
        if !faces.is_empty() {
            break 'search;
        }
    }
    if faces.is_empty() {
        'rolls: for roll in RETRY_ROLLS_DEG {
            let (rotated, back) = rotate_about_center(&small, roll);
            for (kind, det) in &detectors {
                // The CNN costs ~1 s a pass on CPU; on turned copies only when asked for.
                if *kind == Detector::Cnn && params.detector != Detector::Cnn {
                    continue;
                }
                faces = attempt(&rotated, *kind, *det, Some(back))?;
                if !faces.is_empty() {
                    break 'rolls;
                }
            }
        }
    }
    if !landmarks_entered {
        enter(Stage::Landmarks)?;
    }
    let count = faces.len();
    let chosen = match (count, params.face_policy) {
        (0, _) => return Err(RenderError::NoFace),
        (1, _) | (_, FacePolicy::Largest) => faces
            .into_iter()
            .max_by(|a, b| (a.width * a.height).total_cmp(&(b.width * b.height)))
            .ok_or(RenderError::NoFace)?,
        (n, FacePolicy::Error) => return Err(RenderError::MultipleFaces(n)),
    };

    // dlib's shape predictor expects an upright face, and in a turned copy the face can still
    // be up to 45° off: its landmarks then put the eyes some degrees wrong. Once more, level.
    let mut chosen = chosen;
    if let Some(lm) = engines.landmarker() {
        let roll = align::eye_angle(chosen.landmarks.eye_left, chosen.landmarks.eye_right);
        if roll.abs() >= LEVEL_REFINE_DEG {
            if let Some(levelled) = landmarks_levelled(&small, &chosen, roll, lm)? {
                chosen.landmarks = levelled;
            }
        }
    }

    // Back to full resolution; landmarks refined there when the detection ran on a copy.
    let inv = 1.0 / scale;
    let up = |p: [f32; 2]| [p[0] * inv, p[1] * inv];
    let mut face = Face {
        center: up(chosen.center),
        width: chosen.width * inv,
        height: chosen.height * inv,
        score: chosen.score,
        landmarks: FaceLandmarks {
            eye_left: up(chosen.landmarks.eye_left),
            eye_right: up(chosen.landmarks.eye_right),
            nose: up(chosen.landmarks.nose),
            points: chosen.landmarks.points.iter().map(|p| up(*p)).collect(),
        },
    };
    if scale < 1.0 {
        if let Some(lm) = engines.landmarker() {
            let roll = align::eye_angle(face.landmarks.eye_left, face.landmarks.eye_right);
            // dlib's shape predictor expects an upright box; only refine faces found upright.
            if roll.abs() < 20.0 {
                let refined = lm.landmarks(rgb, &face.rect_at(face.center))?;
                if confirm::plausible(
                    &face.rect_at(face.center),
                    &refined,
                    &ConfirmParams::default(),
                )
                .is_ok()
                {
                    face.landmarks = refined;
                }
            }
        }
    }
    Ok((count as u32, face))
}

/// Landmarks of `face` found again on a window of `img` turned by `-roll` about the face, so
/// the face is level there, and mapped back to `img`; `None` when they are not plausible.
fn landmarks_levelled(
    img: &RgbImage,
    face: &Face,
    roll: f32,
    landmarker: &dyn Landmarker,
) -> Result<Option<FaceLandmarks>, RenderError> {
    // A window of a few face sizes is all the shape predictor looks at.
    let side = (face.width.max(face.height) * 3.0).ceil().max(16.0) as u32;
    let half = f64::from(side) / 2.0;
    let [cx, cy] = face.center.map(f64::from);
    let forward = Affine::rotation_about([cx, cy], f64::from(-roll))
        .then(&Affine::translation(half - cx, half - cy));
    let Some(back) = forward.inverse() else {
        return Ok(None);
    };
    let window = sample(img, side, side, &back);
    let rect = face.rect_at([half as f32, half as f32]);
    let found = landmarker.landmarks(&window, &rect)?;
    if confirm::plausible(&rect, &found, &ConfirmParams::default()).is_err() {
        return Ok(None);
    }
    Ok(Some(back.apply_landmarks(&found)))
}

/// Landmarks for a detection and the plausibility check; `None` when it is not a face.
fn confirm_face(
    img: &RgbImage,
    d: &Detection,
    engines: &Engines,
) -> Result<Option<Face>, RenderError> {
    let landmarks = match (engines.landmarker(), &d.landmarks) {
        (Some(l), _) => l.landmarks(img, &d.bbox)?,
        (None, Some(lm)) => lm.clone(),
        (None, None) => return Ok(None),
    };
    if let Err(why) = confirm::plausible(&d.bbox, &landmarks, &ConfirmParams::default()) {
        tracing::debug!(check = why.check(), "detection rejected: {why}");
        return Ok(None);
    }
    // A detector's own landmarks (RetinaFace) must agree with dlib's: both see the same eyes.
    if let (Some(own), true) = (&d.landmarks, engines.landmarker().is_some()) {
        let iod = dist(landmarks.eye_left, landmarks.eye_right).max(1.0);
        if dist(own.eye_left, landmarks.eye_left) > 0.5 * iod
            || dist(own.eye_right, landmarks.eye_right) > 0.5 * iod
        {
            tracing::debug!("detection rejected: detector and landmark model disagree on the eyes");
            return Ok(None);
        }
    }
    Ok(Some(Face {
        center: [
            d.bbox.x + d.bbox.width / 2.0,
            d.bbox.y + d.bbox.height / 2.0,
        ],
        width: d.bbox.width,
        height: d.bbox.height,
        score: d.score,
        landmarks,
    }))
}

/// Whether a verifier's detection is the same face: its box centre inside ours and its eyes
/// within half an eye distance of our landmarks' eyes.
fn same_face(face: &Face, other: &Detection) -> bool {
    let rect = face.rect_at(face.center);
    let (cx, cy) = other.bbox.center();
    let inside = cx >= rect.x && cx <= rect.right() && cy >= rect.y && cy <= rect.bottom();
    let Some(lm) = &other.landmarks else {
        return inside && rect.iou(&other.bbox) > 0.3;
    };
    let iod = dist(face.landmarks.eye_left, face.landmarks.eye_right).max(1.0);
    inside
        && dist(lm.eye_left, face.landmarks.eye_left) <= 0.5 * iod
        && dist(lm.eye_right, face.landmarks.eye_right) <= 0.5 * iod
}

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// `img` turned by `deg` about its centre, and the transform from the turned image's pixels
/// back to `img`'s. Quarter and half turns are exact and keep the whole photo (the canvas
/// swaps sides); other angles resample onto a canvas of the same size.
fn rotate_about_center(img: &RgbImage, deg: f32) -> (RgbImage, Affine) {
    let (w, h) = img.dimensions();
    let (wf, hf) = (f64::from(w), f64::from(h));
    // In continuous pixel coordinates; `back` maps a turned point to the original.
    let quarter = |m: [[f64; 3]; 2]| Affine { m };
    match deg {
        // Clockwise on screen: (x, y) → (h − y, x).
        90.0 => {
            return (
                imageops::rotate90(img),
                quarter([[0.0, 1.0, 0.0], [-1.0, 0.0, hf]]),
            )
        }
        // (x, y) → (y, w − x).
        -90.0 => {
            return (
                imageops::rotate270(img),
                quarter([[0.0, -1.0, wf], [1.0, 0.0, 0.0]]),
            )
        }
        180.0 | -180.0 => {
            return (
                imageops::rotate180(img),
                quarter([[-1.0, 0.0, wf], [0.0, -1.0, hf]]),
            )
        }
        _ => {}
    }
    let center = [wf / 2.0, hf / 2.0];
    let forward = Affine::rotation_about(center, f64::from(deg));
    let back = forward.inverse().unwrap_or_default();
    (sample(img, w, h, &back), back)
}

/// A `w`×`h` image whose pixel centres `back` maps into `img`, sampled by
/// [`align::warp`]; mid grey wherever a pixel is not wholly inside the photo. The edge is
/// kept hard on purpose: a soft ramp into the grey gives detectors a gradient that a face
/// cut by the border does not have in the photo.
fn sample(img: &RgbImage, w: u32, h: u32, back: &Affine) -> RgbImage {
    // Only the part of the photo the window reads is converted, not the whole photo (a
    // 20-megapixel one would be copied whole, 80 MB, for a face-sized window): the box of the
    // window's mapped corners, two pixels wider for the bilinear taps, cut to the photo. The
    // taps never reach past that box except where it is the photo's own edge, so the result
    // is the same.
    let reach = back.apply_rect(&Rect {
        x: 0.0,
        y: 0.0,
        width: w as f32,
        height: h as f32,
    });
    let cut = |v: f32, max: u32| v.clamp(0.0, max as f32) as u32;
    let (x0, y0) = (
        cut((reach.x - 2.0).floor(), img.width()),
        cut((reach.y - 2.0).floor(), img.height()),
    );
    let (x1, y1) = (
        cut((reach.right() + 2.0).ceil(), img.width()),
        cut((reach.bottom() + 2.0).ceil(), img.height()),
    );
    if x1 <= x0 || y1 <= y0 {
        return RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
    }
    let rgba: RgbaImage = imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0)
        .to_image()
        .convert();
    let back = back.then(&Affine::scale_then_translate(
        1.0,
        -f64::from(x0),
        -f64::from(y0),
    ));
    grey_where_uncovered(&align::warp(&rgba, w, h, &back))
}

/// `turned` without alpha: mid grey wherever a pixel is not wholly covered.
fn grey_where_uncovered(turned: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(turned.width(), turned.height(), |x, y| {
        let [r, g, b, a] = turned.get_pixel(x, y).0;
        if a == u8::MAX {
            image::Rgb([r, g, b])
        } else {
            image::Rgb([128, 128, 128])
        }
    })
}

fn encode_all(canvas: &RgbaImage, params: &JobParams) -> Result<Vec<Rendered>, RenderError> {
    // A physical photo (passport, visa) says how large it prints: its files carry the dpi.
    let dpi = params
        .preset
        .and_then(|p| p.print_height_in())
        .map(|inches| {
            (f64::from(params.height) / inches)
                .round()
                .clamp(1.0, 65_535.0) as u16
        });
    let mut outputs = Vec::new();
    for format in &params.formats {
        let bytes = match format {
            Format::Png => {
                let png = encode::encode_png(canvas, params.transparent)?;
                match dpi {
                    Some(dpi) => encode::png_with_dpi(&png, u32::from(dpi)).unwrap_or(png),
                    None => png,
                }
            }
            // No dpi here: the WebP container has no resolution field (EXIF could carry one;
            // print shops take PNG or JPEG).
            Format::Webp => encode::encode_webp(canvas, params.transparent, params.webp_quality)?,
            Format::Jpg => {
                // JPEG has no alpha: a transparent portrait is flattened onto `background`.
                let rgb = compose::flatten(canvas, params.background.0);
                let mut jpeg = encode::encode_jpeg_within(
                    &rgb,
                    &JpegParams {
                        max_bytes: params.jpeg_max_bytes as usize,
                        ..JpegParams::default()
                    },
                )?
                .bytes;
                if let Some(dpi) = dpi {
                    encode::set_jpeg_dpi(&mut jpeg, dpi);
                }
                jpeg
            }
        };
        outputs.push(Rendered {
            format: *format,
            bytes,
            width: canvas.width(),
            height: canvas.height(),
        });
    }
    Ok(outputs)
}

#[cfg(test)]
mod sample_tests {
    use super::*;

    #[test]
    fn a_window_samples_as_from_the_whole_photo() {
        let photo = RgbImage::from_fn(300, 200, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 199) as u8, ((x * y) % 253) as u8])
        });
        let whole = |w: u32, h: u32, back: &Affine| {
            let rgba: RgbaImage = photo.convert();
            grey_where_uncovered(&align::warp(&rgba, w, h, back))
        };
        for back in [
            Affine::scale_then_translate(1.0, 40.0, 30.0),
            Affine::scale_then_translate(0.7, -20.0, 150.0),
            Affine::scale_then_translate(2.3, 100.5, 10.25),
            Affine::rotation_about([150.0, 100.0], 33.0),
            Affine::rotation_about([290.0, 5.0], -71.0)
                .then(&Affine::scale_then_translate(1.4, -3.0, 8.0)),
            Affine::scale_then_translate(1.0, 1000.0, 0.0),
        ] {
            assert_eq!(
                sample(&photo, 120, 90, &back),
                whole(120, 90, &back),
                "{back:?}"
            );
        }
    }
}
