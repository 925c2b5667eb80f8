//! Background removal with a U²-Net-family ONNX model (`u2netp`, `u2net`, `u2net_human_seg`),
//! pre- and post-processed exactly as rembg does so its mattes carry over: 320×320 Lanczos
//! input, ImageNet normalisation, first output min-max normalised and resized back.

use std::path::Path;
use std::sync::Arc;

use crate::resize::{self, Filter};
use image::{GrayImage, RgbImage};

use super::onnx::{model_error, OnnxParams, OnnxSession};
use crate::batch::Batcher;
use crate::face::{EngineError, Segmenter};

/// Side of the square the model sees (rembg `U2netSession`: `(320, 320)`).
pub(crate) const INPUT_SIZE: u32 = 320;
/// ImageNet channel means and standard deviations, RGB (rembg `U2netSession.predict`).
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A U²-Net segmenter. Cheap to share: the session is behind a lock (see `OnnxSession`).
#[derive(Debug)]
pub struct U2Net {
    session: Arc<OnnxSession>,
    name: &'static str,
    /// The saliency map rembg uses: the model's first output (`d1`, the fused one).
    output: String,
    /// With cross-job batching: the model's inference thread, taking preprocessed inputs and
    /// giving saliency maps (each `INPUT_SIZE`² values).
    batcher: Option<Batcher<Vec<f32>, Vec<f32>>>,
}

impl U2Net {
    /// Opens a U²-Net model file. Its name (`u2netp`, `u2net_human_seg`, else `u2net`) comes
    /// from the file name.
    pub fn load(path: &Path, params: &OnnxParams) -> Result<Self, EngineError> {
        let session = OnnxSession::load(path, params)?;
        if session.input_names().len() != 1 {
            return Err(model_error(
                path,
                format!(
                    "not a U²-Net model: expected one input, found {:?}",
                    session.input_names()
                ),
            ));
        }
        // U²-Net: NCHW in at 320×320, a one-channel map out (rembg's exports declare both
        // statically; a dynamic dimension is accepted). Refuses, say, a detector model.
        let side = i64::from(INPUT_SIZE);
        let input_ok = matches(session.input_shape(0), &[1, 3, side, side]);
        let output_ok = matches(session.output_shape(0), &[1, 1, side, side]);
        if !input_ok || !output_ok {
            return Err(model_error(
                path,
                format!(
                    "not a U²-Net model: input {:?}, first output {:?}; expected [1, 3, 320, 320] \
                     and [1, 1, 320, 320]",
                    session.input_shape(0).unwrap_or_default(),
                    session.output_shape(0).unwrap_or_default()
                ),
            ));
        }
        let output = session
            .output_names()
            .first()
            .cloned()
            .ok_or_else(|| model_error(path, "not a U²-Net model: no outputs"))?;
        let name = name_for(path);
        let session = Arc::new(session);
        let batcher = if params.batch.batches() {
            // A batch needs a batch axis: the `.batch.onnx` files of scripts/patch-onnx-batch.
            let batch_axis = session
                .input_shape(0)
                .is_some_and(|s| s.first() == Some(&-1));
            if !batch_axis {
                return Err(model_error(
                    path,
                    format!(
                        "FACECRAFT_BATCH_MAX={} needs a model with a batch axis (make it with \
                         scripts/patch-onnx-batch)",
                        params.batch.max
                    ),
                ));
            }
            let (session, output) = (session.clone(), output.clone());
            Some(Batcher::spawn(
                name,
                params.batch,
                Box::new(move |inputs: &[Vec<f32>]| run_batch(&session, &output, inputs)),
            )?)
        } else {
            None
        };
        Ok(Self {
            name,
            session,
            output,
            batcher,
        })
    }

    /// The model file this engine runs.
    pub fn path(&self) -> &Path {
        self.session.path()
    }
}

/// Whether a declared shape fits `want` (a negative declared dimension is dynamic and fits).
fn matches(declared: Option<&[i64]>, want: &[i64]) -> bool {
    declared.is_some_and(|shape| {
        shape.len() == want.len() && shape.iter().zip(want).all(|(got, w)| got == w || *got < 0)
    })
}

fn name_for(path: &Path) -> &'static str {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if stem.contains("human_seg") {
        "u2net_human_seg"
    } else if stem.starts_with("u2netp") {
        "u2netp"
    } else {
        "u2net"
    }
}

impl Segmenter for U2Net {
    fn name(&self) -> &'static str {
        self.name
    }

    fn device(&self) -> &'static str {
        self.session.device()
    }

    fn matte(&self, img: &RgbImage) -> Result<GrayImage, EngineError> {
        if img.width() == 0 || img.height() == 0 {
            return Err(EngineError::Inference("empty image".into()));
        }
        let input = preprocess(img);
        let map = match &self.batcher {
            Some(b) => b.run(input)?,
            None => run_batch(&self.session, &self.output, std::slice::from_ref(&input))?
                .pop()
                .unwrap_or_default(),
        };
        Ok(postprocess(
            &map,
            INPUT_SIZE,
            INPUT_SIZE,
            img.width(),
            img.height(),
        ))
    }
}

/// Runs preprocessed inputs as one `N × 3 × 320 × 320` batch; a saliency map per input.
fn run_batch(
    session: &OnnxSession,
    output: &str,
    inputs: &[Vec<f32>],
) -> Result<Vec<Vec<f32>>, EngineError> {
    let side = INPUT_SIZE as usize;
    let plane = side * side;
    let n = inputs.len();
    let joined;
    let input: &[f32] = if let [one] = inputs {
        one
    } else {
        joined = inputs.concat();
        &joined
    };
    let mut outputs = session.run_f32(&[n, 3, side, side], input, &[output])?;
    let d1 = outputs.pop().ok_or_else(|| {
        EngineError::Inference(format!("{}: no output", session.path().display()))
    })?;
    // d1 is [N, 1, 320, 320].
    let want: Vec<i64> = [n, 1, side, side].iter().map(|&d| d as i64).collect();
    if d1.shape != want || d1.data.len() != n * plane {
        return Err(EngineError::Inference(format!(
            "{}: output shape {:?}, expected {want:?}",
            session.path().display(),
            d1.shape
        )));
    }
    Ok(d1.data.chunks_exact(plane).map(<[f32]>::to_vec).collect())
}

/// The model input for `img`: 320×320 (Lanczos), divided by the image's largest channel value,
/// ImageNet-normalised, planar RGB (NCHW, batch of one). Mirrors rembg's `BaseSession.normalize`.
pub(crate) fn preprocess(img: &RgbImage) -> Vec<f32> {
    let small = resize::rgb(img, INPUT_SIZE, INPUT_SIZE, Filter::Lanczos3);
    // rembg divides by `max(np.max(im), 1e-6)`, not by 255: a dark photo is stretched.
    let max = small.as_raw().iter().copied().max().unwrap_or(0).max(1);
    let scale = 1.0 / f32::from(max);
    let plane = (INPUT_SIZE * INPUT_SIZE) as usize;
    let mut out = vec![0.0; 3 * plane];
    for (i, px) in small.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(px[c]) * scale - MEAN[c]) / STD[c];
        }
    }
    out
}

/// The matte from the model's `w`×`h` saliency map `raw`: min-max normalised to 0–255
/// (truncated, as rembg's `astype("uint8")`), then resized to `out_w`×`out_h` (bilinear; rembg
/// uses Lanczos). A flat map (no contrast at all) gives an all-background matte.
pub(crate) fn postprocess(raw: &[f32], w: u32, h: u32, out_w: u32, out_h: u32) -> GrayImage {
    debug_assert_eq!(raw.len(), (w * h) as usize);
    let (min, max) = raw
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = max - min;
    let pixels: Vec<u8> = if range > 0.0 && range.is_finite() {
        raw.iter()
            .map(|&v| ((v - min) / range * 255.0) as u8)
            .collect()
    } else {
        vec![0; raw.len()]
    };
    let small = GrayImage::from_raw(w, h, pixels).unwrap_or_else(|| GrayImage::new(w, h));
    if (w, h) == (out_w, out_h) {
        small
    } else {
        // Bilinear, not rembg's Lanczos: the pipeline refits the edge to the photo afterwards
        // (`matte::clean`), so a sharper kernel here only costs time (3× the taps).
        resize::gray(&small, out_w, out_h, Filter::Triangle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::onnx::test_support;
    use image::{Luma, Rgb};

    const PLANE: usize = (INPUT_SIZE * INPUT_SIZE) as usize;

    #[test]
    fn preprocess_normalises_by_image_max_then_imagenet() {
        let img = RgbImage::from_pixel(50, 40, Rgb([255, 128, 0]));
        let input = preprocess(&img);
        assert_eq!(input.len(), 3 * PLANE);
        let expect = [
            (1.0 - 0.485) / 0.229,
            (128.0 / 255.0 - 0.456) / 0.224,
            (0.0 - 0.406) / 0.225,
        ];
        for (c, want) in expect.iter().enumerate() {
            for i in [0, PLANE / 2, PLANE - 1] {
                let got = input[c * PLANE + i];
                assert!(
                    (got - want).abs() < 1e-4,
                    "channel {c} index {i}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn preprocess_stretches_a_dark_image_like_rembg() {
        // Max channel value 100 → red becomes 1.0, not 100/255.
        let img = RgbImage::from_pixel(8, 8, Rgb([100, 50, 0]));
        let input = preprocess(&img);
        assert!((input[0] - (1.0 - 0.485) / 0.229).abs() < 1e-4);
        assert!((input[PLANE] - (0.5 - 0.456) / 0.224).abs() < 1e-4);
        // All black: no division by zero.
        let black = preprocess(&RgbImage::new(4, 4));
        assert!(black.iter().all(|v| v.is_finite()));
        assert!((black[0] + 0.485 / 0.229).abs() < 1e-4);
    }

    #[test]
    fn preprocess_is_planar_rgb() {
        // Left half red, right half blue: plane 0 is high on the left, plane 2 on the right.
        let img = RgbImage::from_fn(64, 64, |x, _| {
            if x < 32 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        let input = preprocess(&img);
        let at = |c: usize, x: usize, y: usize| input[c * PLANE + y * INPUT_SIZE as usize + x];
        assert!(at(0, 10, 100) > 2.0 && at(2, 10, 100) < -1.5);
        assert!(at(0, 310, 100) < -2.0 && at(2, 310, 100) > 2.0);
    }

    #[test]
    fn postprocess_min_max_and_size() {
        // Truncated like numpy's astype("uint8"): 63.75 → 63, 127.5 → 127.
        let raw = [-1.0, 0.0, 1.0, 3.0_f32];
        let matte = postprocess(&raw, 2, 2, 2, 2);
        assert_eq!(matte.as_raw(), &vec![0, 63, 127, 255]);
        let big = postprocess(&raw, 2, 2, 7, 5);
        assert_eq!(big.dimensions(), (7, 5));
        // Resizing keeps the corners' order.
        assert!(big.get_pixel(0, 0)[0] < big.get_pixel(6, 4)[0]);
    }

    #[test]
    fn postprocess_flat_map_is_all_background() {
        let matte = postprocess(&[0.5; 16], 4, 4, 9, 9);
        assert_eq!(matte.dimensions(), (9, 9));
        assert!(matte.pixels().all(|p| *p == Luma([0])));
        let nan = postprocess(&[f32::NAN; 4], 2, 2, 2, 2);
        assert!(nan.pixels().all(|p| *p == Luma([0])));
    }

    #[test]
    fn name_comes_from_the_file() {
        assert_eq!(name_for(Path::new("/m/u2netp.onnx")), "u2netp");
        assert_eq!(name_for(Path::new("/m/u2net.onnx")), "u2net");
        assert_eq!(
            name_for(Path::new("/m/u2net_human_seg.onnx")),
            "u2net_human_seg"
        );
    }

    #[test]
    fn missing_model_is_model_unavailable_naming_the_file() {
        let err = U2Net::load(
            Path::new("/nonexistent/u2net_human_seg.onnx"),
            &OnnxParams::default(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "model_unavailable");
        assert!(
            err.to_string()
                .contains("/nonexistent/u2net_human_seg.onnx"),
            "{err}"
        );
    }

    #[test]
    fn a_detector_model_is_refused_as_segmenter() {
        test_support::init_runtime();
        let path = test_support::model("retinaface_mnet025.onnx");
        let err = U2Net::load(&path, &test_support::params()).unwrap_err();
        assert_eq!(err.code(), "model_unavailable");
        assert!(err.to_string().contains("retinaface_mnet025.onnx"), "{err}");
    }

    #[test]
    fn u2netp_separates_the_astronaut_from_the_background() {
        test_support::init_runtime();
        let seg =
            U2Net::load(&test_support::model("u2netp.onnx"), &test_support::params()).unwrap();
        assert_eq!(seg.name(), "u2netp");
        let img = test_support::test_photo("astronaut.png");
        let matte = seg.matte(&img).unwrap();
        if let Ok(dir) = std::env::var("FACECRAFT_TEST_OUT") {
            matte
                .save(Path::new(&dir).join("u2netp-astronaut.png"))
                .unwrap();
        }
        assert_eq!(matte.dimensions(), img.dimensions());
        // Face, hair and the suit's chest: person.
        for (x, y) in [(225, 120), (210, 90), (250, 400)] {
            let v = matte.get_pixel(x, y)[0];
            assert!(v > 200, "person pixel ({x},{y}) = {v}");
        }
        // Backdrop top right, the shuttle model, its stand, and the flag top left: background.
        for (x, y) in [(480, 30), (395, 150), (450, 250), (20, 30)] {
            let v = matte.get_pixel(x, y)[0];
            assert!(v < 50, "background pixel ({x},{y}) = {v}");
        }
        // Most of the frame is background or person, little is undecided.
        let undecided = matte
            .pixels()
            .filter(|p| (50..=200).contains(&p[0]))
            .count();
        assert!(undecided * 10 < matte.len(), "{undecided} undecided pixels");
    }

    #[test]
    fn the_arena_setting_changes_memory_not_the_matte() {
        test_support::init_runtime();
        let path = test_support::model("u2netp.onnx");
        let img = test_support::test_photo("astronaut.png");
        let with = U2Net::load(&path, &test_support::params()).unwrap();
        let lean = OnnxParams {
            cpu_arena: false,
            ..test_support::params()
        };
        let without = U2Net::load(&path, &lean).unwrap();
        let (a, b) = (with.matte(&img).unwrap(), without.matte(&img).unwrap());
        // Same kernels, same thread count: only where buffers live differs.
        let worst = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap();
        assert!(worst <= 1, "largest matte difference {worst}");
        // And a second run of the lean session (buffers freed and taken again) agrees too.
        assert_eq!(without.matte(&img).unwrap().as_raw(), b.as_raw());
    }
}
