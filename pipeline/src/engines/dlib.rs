//! dlib engines: the frontal HOG and MMOD CNN face detectors and the 5- and 68-point shape
//! predictors, through the `dlib-face-recognition` crate over the system dlib (19.24).
//! That crate is tied to `image` 0.24, so images cross over as raw RGB bytes.

use std::io::Read;
use std::os::raw::c_long;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::resize::{self, Filter};
use dlib_face_recognition::{
    FaceDetector as DlibHog, FaceDetectorCnn, FaceDetectorTrait, ImageMatrix, LandmarkPredictor,
    LandmarkPredictorTrait, Rectangle,
};
use image::RgbImage;

use crate::face::{Detection, EngineError, FaceDetector, FaceLandmarks, Landmarker, Rect};

/// Score given to every dlib detection: the crate returns bare rectangles from both detectors
/// and drops the confidence dlib computes (see [`HogDetector`]).
pub const DLIB_SCORE: f32 = 1.0;

/// The CNN is not run on images with a side shorter than this. dlib aborts the process (a
/// failed `DLIB_CASSERT` in its convolution) on images narrower or lower than about 10 px
/// (checked: sides 0–9 abort, every size from 10×10 to 40×40 and 10–17 × up to 4001 pass), and
/// no face the network can find fits in so few pixels anyway.
const CNN_MIN_SIDE: u32 = 16;

/// Options of the HOG detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HogParams {
    /// How many times to double the image before scanning. dlib's frontal detector slides an
    /// 80×80 window over an image pyramid, so it misses faces narrower than about 80 px; each
    /// doubling halves that size, costs about 4× the time and finds more false faces (one
    /// doubling finds the mission patch on astronaut.png's suit). Doubling stops before the
    /// image would pass `max_pixels`. Default 0: portraits have large faces.
    pub upsample: u8,
    /// Larger images are shrunk to this many pixels before scanning; the time grows with the
    /// pixel count (about 30 ms at 512², 0.45 s at 2000² on one core). Default 2048².
    pub max_pixels: u64,
}

impl Default for HogParams {
    fn default() -> Self {
        Self {
            upsample: 0,
            max_pixels: 2048 * 2048,
        }
    }
}

/// Options of the CNN detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CnnParams {
    /// As [`HogParams::upsample`]: the MMOD network also misses faces under about 80 px (it
    /// finds none in astronaut.png halved, where the face is 44 px). Default 0.
    pub upsample: u8,
    /// Larger images are shrunk to this many pixels before the network sees them. On one CPU
    /// core it took 1 s and 0.27 GB at its peak for 512², 3.5 s and 1 GB for 1024², and 17 s
    /// and 4 GB for 2000² unshrunk. Default 1024² (faces down to about 8% of the width).
    pub max_pixels: u64,
}

impl Default for CnnParams {
    fn default() -> Self {
        Self {
            upsample: 0,
            max_pixels: 1024 * 1024,
        }
    }
}

/// dlib's frontal-face HOG detector (`get_frontal_face_detector()`), name `hog`.
///
/// Every detection has score [`DLIB_SCORE`] (1.0): dlib computes a confidence
/// (`object_detector::operator()(img, dets_with_scores, adjust_threshold)`), but the crate only
/// wraps the overload that returns rectangles, and reaching the C++ ourselves would need the
/// `cpp` macro with a build script and `unsafe` code, which this workspace forbids.
pub struct HogDetector {
    pool: Pool<DlibHog>,
    params: HogParams,
}

impl HogDetector {
    /// The detector's model is compiled into dlib, so this cannot fail; it takes about 0.4 s
    /// (dlib decodes the model), so build one at start-up.
    pub fn new(params: HogParams) -> Self {
        Self {
            pool: Pool::new(DlibHog::new()),
            params,
        }
    }
}

impl FaceDetector for HogDetector {
    fn name(&self) -> &'static str {
        "hog"
    }

    fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>, EngineError> {
        let size = scan_size(img, self.params.upsample, self.params.max_pixels);
        if size.0 == 0 || size.1 == 0 {
            return Ok(Vec::new());
        }
        let scanned = scan_input(img, size)?;
        let rects = self.pool.with(|hog| hog.face_locations(&scanned).to_vec());
        Ok(to_detections(&rects, img, size))
    }
}

/// dlib's MMOD CNN face detector (`mmod_human_face_detector.dat`), name `cnn`.
///
/// Every detection has score [`DLIB_SCORE`] (1.0): the network gives each `mmod_rect` a
/// `detection_confidence`, but the crate keeps only its rectangle. It also finds faces turned
/// away from the camera (the profile in camera.png, which HOG misses), at about 20–30× the cost
/// of [`HogDetector`]: the system dlib runs it on the CPU.
pub struct CnnDetector {
    pool: Pool<FaceDetectorCnn>,
    params: CnnParams,
}

impl CnnDetector {
    /// Loads `mmod_human_face_detector.dat` with [`CnnParams::default`]; an error names the
    /// file.
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        check_model_file(path, ModelKind::Cnn)?;
        let net = FaceDetectorCnn::open(path).map_err(|reason| unavailable(path, reason))?;
        Ok(Self {
            pool: Pool::new(net),
            params: CnnParams::default(),
        })
    }

    pub fn with_params(self, params: CnnParams) -> Self {
        Self { params, ..self }
    }
}

impl FaceDetector for CnnDetector {
    fn name(&self) -> &'static str {
        "cnn"
    }

    fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>, EngineError> {
        let size = scan_size(img, self.params.upsample, self.params.max_pixels);
        if size.0.min(size.1) < CNN_MIN_SIDE {
            return Ok(Vec::new());
        }
        let scanned = scan_input(img, size)?;
        let rects = self.pool.with(|net| net.face_locations(&scanned).to_vec());
        Ok(to_detections(&rects, img, size))
    }
}

/// Which dlib shape predictor a [`DlibLandmarker`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandmarkModel {
    /// `shape_predictor_5_face_landmarks.dat`: two corners of each eye and the base of the nose.
    Five,
    /// `shape_predictor_68_face_landmarks.dat`: the iBUG 300-W markup.
    SixtyEight,
}

/// A dlib shape predictor, name `dlib5` or `dlib68` after the model file it was loaded from.
///
/// `shape_predictor::operator()` is `const` and keeps no scratch state, and the crate's type is
/// `Send + Sync`, so one predictor serves every thread without a lock.
pub struct DlibLandmarker {
    predictor: LandmarkPredictor,
    model: LandmarkModel,
}

impl DlibLandmarker {
    /// Loads a 5- or 68-point shape predictor; which one is read from the model itself. An error
    /// names the file.
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        check_model_file(path, ModelKind::ShapePredictor)?;
        let predictor =
            LandmarkPredictor::open(path).map_err(|reason| unavailable(path, reason))?;
        // A shape predictor always returns as many points as it was trained with, whatever the
        // image, so a run on a blank patch tells which markup the file holds.
        let probe = to_matrix(&RgbImage::new(16, 16))?;
        let whole = Rectangle {
            left: 0,
            top: 0,
            right: 15,
            bottom: 15,
        };
        let model = match predictor.face_landmarks(&probe, &whole).len() {
            5 => LandmarkModel::Five,
            68 => LandmarkModel::SixtyEight,
            n => {
                return Err(unavailable(
                    path,
                    format!("shape predictor gives {n} points; only the 5- and 68-point models are supported"),
                ))
            }
        };
        Ok(Self { predictor, model })
    }

    pub fn model(&self) -> LandmarkModel {
        self.model
    }
}

impl Landmarker for DlibLandmarker {
    fn name(&self) -> &'static str {
        match self.model {
            LandmarkModel::Five => "dlib5",
            LandmarkModel::SixtyEight => "dlib68",
        }
    }

    fn landmarks(&self, img: &RgbImage, face: &Rect) -> Result<FaceLandmarks, EngineError> {
        if !(face.width >= 1.0 && face.height >= 1.0) {
            return Err(EngineError::Inference(format!(
                "face box {face:?} is empty"
            )));
        }
        let matrix = to_matrix(img)?;
        let points: Vec<[f32; 2]> = self
            .predictor
            .face_landmarks(&matrix, &to_dlib_rect(face))
            .iter()
            .map(|p| [p.x() as f32, p.y() as f32])
            .collect();
        // The models' own point numbering decides which eye is which, not a sort by x, so a
        // tilted or upside-down face keeps its eyes apart: `eye_left` is the subject's right
        // eye, on the image's left when the face is upright (checked on astronaut.png).
        let (eye_left, eye_right, nose) = match (self.model, points.len()) {
            // 5-point: 0–1 outer and inner corner of the image-right eye, 2–3 outer and inner of
            // the image-left eye, 4 the base of the nose (the mean shape in dlib's
            // `get_face_chip_details`: x 0.86, 0.65, 0.12, 0.33, 0.49).
            (LandmarkModel::Five, 5) => (mean(&points[2..4]), mean(&points[0..2]), points[4]),
            // 68-point (iBUG 300-W, 0-based): 36–41 and 42–47 the eyes, 30 the nose tip.
            (LandmarkModel::SixtyEight, 68) => {
                (mean(&points[36..42]), mean(&points[42..48]), points[30])
            }
            (_, n) => {
                return Err(EngineError::Inference(format!(
                    "shape predictor returned {n} points for a {:?} model",
                    self.model
                )))
            }
        };
        Ok(FaceLandmarks {
            eye_left,
            eye_right,
            nose,
            points,
        })
    }
}

/// A stock of clones of one dlib detector, one per concurrent caller.
///
/// dlib's detectors must not be shared between threads: the HOG `object_detector::operator()`
/// is non-const and loads each image's feature pyramid into its scanner's members, and a
/// `loss_mmod` network keeps every layer's output inside the network object. The crate marks
/// both `Send` but not `Sync`. One `Mutex` would make every job queue for a single detector;
/// instead a call takes a detector out of the stock (cloning the template when the stock is
/// empty) and puts it back afterwards, so the stock grows to the worker's peak concurrency and
/// no further. Each CNN clone keeps its last image's activations (about 50 MB after a 512²
/// image, 0.2 GB after 1024²).
struct Pool<T> {
    template: Mutex<T>,
    idle: Mutex<Vec<T>>,
}

impl<T: Clone> Pool<T> {
    fn new(template: T) -> Self {
        Self {
            template: Mutex::new(template),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let idle = lock(&self.idle).pop();
        let item = match idle {
            Some(item) => item,
            None => lock(&self.template).clone(),
        };
        let out = f(&item);
        lock(&self.idle).push(item);
        out
    }
}

/// The guarded values stay consistent whatever panicked while the lock was held (a pop, a push
/// or a clone), so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Size of the image a detector scans: shrunk to `max_pixels` when larger, else doubled
/// `upsample` times while it stays within `max_pixels`.
fn scan_size(img: &RgbImage, upsample: u8, max_pixels: u64) -> (u32, u32) {
    let (width, height) = img.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        let f = (max_pixels as f64 / pixels as f64).sqrt();
        return ((width as f64 * f) as u32, (height as f64 * f) as u32);
    }
    let (mut w, mut h) = (width, height);
    for _ in 0..upsample {
        if u64::from(w) * u64::from(h) * 4 > max_pixels {
            break;
        }
        (w, h) = (w * 2, h * 2);
    }
    (w, h)
}

/// `img` resized to `size` (see [`scan_size`]) in dlib's matrix. The triangle filter widens
/// with the scale when shrinking, so a large photo is averaged rather than aliased.
fn scan_input(img: &RgbImage, size: (u32, u32)) -> Result<ImageMatrix, EngineError> {
    if size == img.dimensions() {
        to_matrix(img)
    } else {
        to_matrix(&resize::rgb(img, size.0, size.1, Filter::Triangle))
    }
}

/// Copies an RGB image into dlib's matrix through the crate's `image` 0.24 view of the same
/// bytes.
fn to_matrix(img: &RgbImage) -> Result<ImageMatrix, EngineError> {
    let view = image024::ImageBuffer::<image024::Rgb<u8>, &[u8]>::from_raw(
        img.width(),
        img.height(),
        img.as_raw().as_slice(),
    )
    .ok_or_else(|| EngineError::Inference("RGB buffer is shorter than its size".to_owned()))?;
    Ok(ImageMatrix::from_image(&view))
}

/// Maps dlib rectangles found on a `scanned`-sized copy of `img` back to `img`, clamped to it.
fn to_detections(rects: &[Rectangle], img: &RgbImage, scanned: (u32, u32)) -> Vec<Detection> {
    let sx = img.width() as f32 / scanned.0.max(1) as f32;
    let sy = img.height() as f32 / scanned.1.max(1) as f32;
    let (w, h) = (img.width() as f32, img.height() as f32);
    rects
        .iter()
        .filter_map(|r| {
            // dlib rectangles are inclusive: `right` is the last column inside the box. Boxes of
            // faces at the border reach past the image; the part inside is what later stages
            // can use, and a box wholly outside is dropped.
            let x0 = (r.left as f32 * sx).clamp(0.0, w);
            let y0 = (r.top as f32 * sy).clamp(0.0, h);
            let x1 = ((r.right + 1) as f32 * sx).clamp(0.0, w);
            let y1 = ((r.bottom + 1) as f32 * sy).clamp(0.0, h);
            (x1 > x0 && y1 > y0).then_some(Detection {
                bbox: Rect {
                    x: x0,
                    y: y0,
                    width: x1 - x0,
                    height: y1 - y0,
                },
                score: DLIB_SCORE,
                landmarks: None,
            })
        })
        .collect()
}

/// The inverse of the mapping in [`to_detections`] at scale 1.
fn to_dlib_rect(face: &Rect) -> Rectangle {
    Rectangle {
        left: face.x.round() as c_long,
        top: face.y.round() as c_long,
        right: face.right().round() as c_long - 1,
        bottom: face.bottom().round() as c_long - 1,
    }
}

fn mean(points: &[[f32; 2]]) -> [f32; 2] {
    let n = points.len() as f32;
    let (x, y) = points
        .iter()
        .fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
    [x / n, y / n]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelKind {
    Cnn,
    ShapePredictor,
}

/// Checks what can be checked before dlib reads the file. The crate panics on a path that is not
/// UTF-8. dlib reads sizes from the file and allocates them before checking them, and any C++
/// exception other than `dlib::error` (which the crate turns into an error) aborts the process:
/// a shape predictor whose first size field was damaged did (`damaged_models_are_rejected`).
/// The leading bytes catch a wrong or foreign file first; damage further in can still abort, so
/// model files are checked by SHA-256 where they are fetched. A truncated file is fine: dlib
/// reports it as a `serialization_error`.
fn check_model_file(path: &Path, kind: ModelKind) -> Result<(), EngineError> {
    if path.to_str().is_none() {
        return Err(unavailable(path, "dlib needs a UTF-8 path".to_owned()));
    }
    let meta = std::fs::metadata(path).map_err(|e| unavailable(path, e.to_string()))?;
    if !meta.is_file() {
        return Err(unavailable(path, "not a regular file".to_owned()));
    }
    let mut head = Vec::with_capacity(14);
    std::fs::File::open(path)
        .and_then(|file| file.take(14).read_to_end(&mut head))
        .map_err(|e| unavailable(path, e.to_string()))?;
    // dlib serialises a small int as a length byte then its bytes, a string as its length then
    // its characters. A `loss_mmod` network starts with format version 1 and the layer name
    // "loss_mmod_"; a shape predictor with version 1 and then its mean shape as a column vector
    // in the newer matrix format (negative row count: 81 = one byte, negative).
    let ok = match kind {
        ModelKind::Cnn => head.starts_with(b"\x01\x01\x01\x0aloss_mmod_"),
        ModelKind::ShapePredictor => head.starts_with(b"\x01\x01\x81"),
    };
    if ok {
        Ok(())
    } else {
        let what = match kind {
            ModelKind::Cnn => "a dlib MMOD face detector (mmod_human_face_detector.dat)",
            ModelKind::ShapePredictor => "a dlib shape predictor (shape_predictor_*.dat)",
        };
        Err(unavailable(path, format!("not {what}")))
    }
}

fn unavailable(path: &Path, reason: String) -> EngineError {
    EngineError::ModelUnavailable {
        path: path.display().to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;
    use std::sync::OnceLock;

    use super::*;
    use image::imageops::{self, FilterType};

    fn first_file(candidates: &[PathBuf], what: &str, hint: &str) -> PathBuf {
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .unwrap_or_else(|| panic!("{what} not found (looked at {candidates:?}); {hint}"))
    }

    use crate::testdata::rgb as testdata;

    /// A model file from `FACECRAFT_MODELS_DIR` or `models/files`; the 68-point model may also
    /// come from Debian's `libdlib-data`. Missing models fail the test: it must not pass by
    /// testing nothing.
    fn model(name: &str) -> PathBuf {
        let mut dirs = Vec::new();
        if let Some(dir) = std::env::var_os("FACECRAFT_MODELS_DIR") {
            dirs.push(PathBuf::from(dir));
        }
        dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/files"));
        dirs.push(PathBuf::from("/usr/share/dlib"));
        let candidates: Vec<PathBuf> = dirs.iter().map(|d| d.join(name)).collect();
        first_file(
            &candidates,
            name,
            "run scripts/fetch-models (--with-68 for the 68-point model) or set FACECRAFT_MODELS_DIR",
        )
    }

    // Loading takes from 0.1 s (CNN) to over a second (HOG, 68-point), so each engine is built
    // once and shared by the tests, which also runs them from several threads at once.
    fn hog() -> &'static HogDetector {
        static HOG: OnceLock<HogDetector> = OnceLock::new();
        HOG.get_or_init(|| HogDetector::new(HogParams::default()))
    }

    fn hog_upsampled() -> &'static HogDetector {
        static HOG: OnceLock<HogDetector> = OnceLock::new();
        HOG.get_or_init(|| {
            HogDetector::new(HogParams {
                upsample: 1,
                ..HogParams::default()
            })
        })
    }

    fn cnn() -> &'static CnnDetector {
        static CNN: OnceLock<CnnDetector> = OnceLock::new();
        CNN.get_or_init(|| CnnDetector::load(&model("mmod_human_face_detector.dat")).unwrap())
    }

    fn five() -> &'static DlibLandmarker {
        static FIVE: OnceLock<DlibLandmarker> = OnceLock::new();
        FIVE.get_or_init(|| {
            DlibLandmarker::load(&model("shape_predictor_5_face_landmarks.dat")).unwrap()
        })
    }

    fn sixty_eight() -> &'static DlibLandmarker {
        static SIXTY_EIGHT: OnceLock<DlibLandmarker> = OnceLock::new();
        SIXTY_EIGHT.get_or_init(|| {
            DlibLandmarker::load(&model("shape_predictor_68_face_landmarks.dat")).unwrap()
        })
    }

    fn only_face(detector: &dyn FaceDetector, img: &RgbImage) -> Rect {
        let faces = detector.detect(img).unwrap();
        assert_eq!(faces.len(), 1, "{}: {faces:?}", detector.name());
        assert_eq!(faces[0].score, DLIB_SCORE);
        assert!(faces[0].landmarks.is_none());
        faces[0].bbox
    }

    fn assert_near(actual: [f32; 2], expected: [f32; 2], tolerance: f32, what: &str) {
        let d = (actual[0] - expected[0]).hypot(actual[1] - expected[1]);
        assert!(
            d <= tolerance,
            "{what}: {actual:?} is {d:.1} px from {expected:?}"
        );
    }

    fn assert_box(actual: Rect, expected: [f32; 4], tolerance: f32, what: &str) {
        let got = [actual.x, actual.y, actual.width, actual.height];
        for (g, e) in got.iter().zip(expected) {
            assert!(
                (g - e).abs() <= tolerance,
                "{what}: {actual:?}, expected ≈ {expected:?}"
            );
        }
    }

    fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("facecraft-dlib-test-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn assert_unavailable(result: Result<impl Sized, EngineError>, path: &Path, reason: &str) {
        let Err(err) = result else {
            panic!("{} loaded", path.display());
        };
        let message = err.to_string();
        match err {
            EngineError::ModelUnavailable { path: p, reason: r } => {
                assert_eq!(p, path.display().to_string());
                assert!(r.contains(reason), "reason {r:?} lacks {reason:?}");
                assert!(message.contains(&p), "{message}");
            }
            other => panic!("expected ModelUnavailable, got {other:?}"),
        }
    }

    #[test]
    fn engines_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<HogDetector>();
        check::<CnnDetector>();
        check::<DlibLandmarker>();
    }

    #[test]
    fn hog_finds_the_astronaut() {
        let face = only_face(hog(), &testdata("astronaut.png"));
        assert_box(face, [179.0, 83.0, 88.0, 88.0], 4.0, "hog");
        assert_eq!(hog().name(), "hog");
    }

    #[test]
    fn cnn_finds_the_same_astronaut() {
        let img = testdata("astronaut.png");
        let face = only_face(cnn(), &img);
        assert_box(face, [168.0, 69.0, 96.0, 96.0], 4.0, "cnn");
        let iou = face.iou(&only_face(hog(), &img));
        assert!(iou > 0.5, "cnn and hog boxes overlap by IoU {iou}");
        assert_eq!(cnn().name(), "cnn");
    }

    #[test]
    fn upsampling_finds_a_small_face() {
        let full = testdata("astronaut.png");
        let half = imageops::resize(&full, 256, 256, FilterType::Triangle);
        // The face is 44 px wide here, under the 80 px window.
        assert!(hog().detect(&half).unwrap().is_empty());
        let small = only_face(hog_upsampled(), &half);
        let doubled = Rect {
            x: small.x * 2.0,
            y: small.y * 2.0,
            width: small.width * 2.0,
            height: small.height * 2.0,
        };
        let iou = doubled.iou(&only_face(hog(), &full));
        assert!(
            iou > 0.8,
            "{small:?} doubled overlaps the full-size face by {iou}"
        );
    }

    #[test]
    fn five_point_landmarks_place_the_eyes_and_nose() {
        let img = testdata("astronaut.png");
        let face = only_face(hog(), &img);
        let marks = five().landmarks(&img, &face).unwrap();
        assert_eq!(five().name(), "dlib5");
        assert_eq!(five().model(), LandmarkModel::Five);
        assert_eq!(marks.points.len(), 5);
        // Points 2–3 are the image-left eye's corners, 0–1 the image-right eye's.
        assert!(marks.points[2][0] < marks.points[3][0]);
        assert!(marks.points[3][0] < marks.points[1][0]);
        assert!(marks.points[1][0] < marks.points[0][0]);
        assert_near(marks.eye_left, [203.5, 102.0], 3.0, "eye_left");
        assert_near(marks.eye_right, [246.0, 104.5], 3.0, "eye_right");
        assert_near(marks.nose, [224.0, 135.0], 3.0, "nose");
        assert!(marks.eye_left[0] < marks.eye_right[0]);
        assert!(marks.eye_left[1] < marks.nose[1] && marks.eye_right[1] < marks.nose[1]);
        let (cx, _) = face.center();
        assert!(marks.eye_left[0] < cx && cx < marks.eye_right[0]);
        let spread = (marks.eye_right[0] - marks.eye_left[0]) / face.width;
        assert!(
            (0.35..0.6).contains(&spread),
            "eye distance {spread} of the box width"
        );
        // The CNN's box is larger but gives the same points.
        let from_cnn = five().landmarks(&img, &only_face(cnn(), &img)).unwrap();
        assert_near(
            from_cnn.eye_left,
            marks.eye_left,
            3.0,
            "eye_left from the cnn box",
        );
        assert_near(
            from_cnn.eye_right,
            marks.eye_right,
            3.0,
            "eye_right from the cnn box",
        );
    }

    #[test]
    fn sixty_eight_point_landmarks_agree_with_five() {
        let img = testdata("astronaut.png");
        let face = only_face(hog(), &img);
        let marks = sixty_eight().landmarks(&img, &face).unwrap();
        assert_eq!(sixty_eight().name(), "dlib68");
        assert_eq!(marks.points.len(), 68);
        let five = five().landmarks(&img, &face).unwrap();
        assert_near(marks.eye_left, five.eye_left, 3.0, "eye_left");
        assert_near(marks.eye_right, five.eye_right, 3.0, "eye_right");
        // Point 30 is the tip of the nose, above the 5-point model's base of the nose.
        assert!(marks.nose[1] < five.nose[1] && marks.nose[1] > marks.eye_left[1]);
        assert!((marks.nose[0] - five.nose[0]).abs() < 5.0);
    }

    #[test]
    fn camera_profile_is_found_by_cnn_only() {
        let img = testdata("camera.png");
        assert!(hog().detect(&img).unwrap().is_empty());
        assert!(hog_upsampled().detect(&img).unwrap().is_empty());
        // The head of the man behind the camera.
        let face = only_face(cnn(), &img);
        assert_box(face, [180.0, 116.0, 80.0, 80.0], 6.0, "cnn on camera.png");
    }

    #[test]
    fn uniform_grey_has_no_face() {
        let grey = RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]));
        assert!(hog().detect(&grey).unwrap().is_empty());
        assert!(hog_upsampled().detect(&grey).unwrap().is_empty());
        assert!(cnn().detect(&grey).unwrap().is_empty());
    }

    #[test]
    fn tiny_images_have_no_face_and_do_not_abort() {
        for (w, h) in [
            (0, 0),
            (1, 1),
            (9, 300),
            (300, 9),
            (15, 15),
            (16, 16),
            (16, 400),
        ] {
            let img = RgbImage::new(w, h);
            assert!(hog().detect(&img).unwrap().is_empty(), "hog {w}×{h}");
            assert!(
                hog_upsampled().detect(&img).unwrap().is_empty(),
                "hog ×2 {w}×{h}"
            );
            assert!(cnn().detect(&img).unwrap().is_empty(), "cnn {w}×{h}");
        }
        // Shrunk below the CNN's smallest input by the pixel cap.
        let shrunk = CnnDetector::load(&model("mmod_human_face_detector.dat"))
            .unwrap()
            .with_params(CnnParams {
                upsample: 0,
                max_pixels: 100,
            });
        assert!(shrunk.detect(&RgbImage::new(400, 300)).unwrap().is_empty());
    }

    #[test]
    fn detectors_can_be_shared_between_threads() {
        let img = testdata("astronaut.png");
        let face = only_face(hog(), &img);
        let marks = five().landmarks(&img, &face).unwrap();
        std::thread::scope(|s| {
            let runs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let found = only_face(hog(), &img);
                        (found, five().landmarks(&img, &found).unwrap())
                    })
                })
                .collect();
            for run in runs {
                assert_eq!(run.join().unwrap(), (face, marks.clone()));
            }
        });
    }

    #[test]
    fn empty_face_box_is_an_error() {
        let img = testdata("astronaut.png");
        let empty = Rect {
            x: 10.0,
            y: 10.0,
            width: 0.0,
            height: 30.0,
        };
        assert!(matches!(
            five().landmarks(&img, &empty),
            Err(EngineError::Inference(_))
        ));
    }

    #[test]
    fn missing_model_names_the_file() {
        let missing = std::env::temp_dir().join("facecraft-no-such-model.dat");
        assert_unavailable(CnnDetector::load(&missing), &missing, "");
        assert_unavailable(DlibLandmarker::load(&missing), &missing, "");
        let err = DlibLandmarker::load(&missing).err().unwrap();
        assert_eq!(err.code(), "model_unavailable");
        assert!(
            err.to_string().contains("facecraft-no-such-model.dat"),
            "{err}"
        );
    }

    #[test]
    fn directory_is_not_a_model() {
        let dir = std::env::temp_dir();
        assert_unavailable(DlibLandmarker::load(&dir), &dir, "not a regular file");
        assert_unavailable(CnnDetector::load(&dir), &dir, "not a regular file");
    }

    #[test]
    fn garbage_and_swapped_models_are_rejected() {
        let mut state = 0x2545_f491_u32;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        for (name, bytes) in [
            ("noise.dat", noise.as_slice()),
            ("empty.dat", b"".as_slice()),
            ("text.dat", b"not a model\n".as_slice()),
        ] {
            let path = scratch_file(name, bytes);
            assert_unavailable(
                DlibLandmarker::load(&path),
                &path,
                "not a dlib shape predictor",
            );
            assert_unavailable(
                CnnDetector::load(&path),
                &path,
                "not a dlib MMOD face detector",
            );
            std::fs::remove_file(&path).unwrap();
        }
        let cnn_file = model("mmod_human_face_detector.dat");
        let five_file = model("shape_predictor_5_face_landmarks.dat");
        assert_unavailable(
            DlibLandmarker::load(&cnn_file),
            &cnn_file,
            "not a dlib shape",
        );
        assert_unavailable(CnnDetector::load(&five_file), &five_file, "not a dlib MMOD");
    }

    #[test]
    fn damaged_models_are_rejected() {
        let five = std::fs::read(model("shape_predictor_5_face_landmarks.dat")).unwrap();
        let cnn = std::fs::read(model("mmod_human_face_detector.dat")).unwrap();
        // Cut short: dlib's own `serialization_error`, through the crate.
        let path = scratch_file("truncated5.dat", &five[..1_000_000]);
        assert_unavailable(DlibLandmarker::load(&path), &path, "Failed to deserialize");
        std::fs::remove_file(&path).unwrap();
        let path = scratch_file("truncated-mmod.dat", &cnn[..300_000]);
        assert_unavailable(CnnDetector::load(&path), &path, "Failed to deserialize");
        std::fs::remove_file(&path).unwrap();
        // A mean-shape size of 127 in the old matrix layout: dlib aborts the whole process on
        // this file (an uncaught C++ exception), so the header check must stop it first.
        let mut damaged = five[..200_000].to_vec();
        damaged[2..4].copy_from_slice(&[0x01, 0x7f]);
        let path = scratch_file("damaged5.dat", &damaged);
        assert_unavailable(
            DlibLandmarker::load(&path),
            &path,
            "not a dlib shape predictor",
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_path_is_an_error_not_a_panic() {
        use std::os::unix::ffi::OsStrExt;
        let path = std::env::temp_dir().join(std::ffi::OsStr::from_bytes(b"model-\xff.dat"));
        assert_unavailable(DlibLandmarker::load(&path), &path, "UTF-8");
    }

    #[test]
    fn scan_size_doubles_up_to_the_cap_and_shrinks_above_it() {
        let size = |w, h, upsample, cap| scan_size(&RgbImage::new(w, h), upsample, cap);
        let cap = 2048 * 2048;
        assert_eq!(size(512, 512, 0, cap), (512, 512));
        assert_eq!(size(512, 512, 1, cap), (1024, 1024));
        assert_eq!(size(512, 512, 2, cap), (2048, 2048));
        assert_eq!(size(512, 512, 3, cap), (2048, 2048));
        assert_eq!(size(2048, 1024, 1, cap), (2048, 1024));
        assert_eq!(size(0, 0, 255, cap), (0, 0));
        assert_eq!(size(4000, 3000, 0, 1000 * 750), (1000, 750));
        assert_eq!(size(4000, 3000, 2, 1000 * 750), (1000, 750));
        assert_eq!(size(100_000, 10, 0, 1000), (3162, 0));
    }

    #[test]
    fn cnn_finds_the_face_in_a_large_photo_within_its_pixel_cap() {
        let img = testdata("astronaut.png");
        let big = imageops::resize(&img, 2000, 2000, FilterType::Triangle);
        let face = only_face(cnn(), &big);
        let scaled = Rect {
            x: face.x / 2000.0 * 512.0,
            y: face.y / 2000.0 * 512.0,
            width: face.width / 2000.0 * 512.0,
            height: face.height / 2000.0 * 512.0,
        };
        let iou = scaled.iou(&only_face(cnn(), &img));
        assert!(iou > 0.7, "{face:?} overlaps the 512² face by {iou}");
    }

    #[test]
    fn dlib_rectangles_map_back_and_clamp() {
        let img = RgbImage::new(100, 80);
        let rect = |left, top, right, bottom| Rectangle {
            left,
            top,
            right,
            bottom,
        };
        let boxes = |rects: &[Rectangle], scanned| -> Vec<Rect> {
            to_detections(rects, &img, scanned)
                .into_iter()
                .map(|d| d.bbox)
                .collect()
        };
        // Inclusive corners: 10..=49 is 40 px.
        assert_eq!(
            boxes(&[rect(10, 20, 49, 59)], (100, 80)),
            [Rect {
                x: 10.0,
                y: 20.0,
                width: 40.0,
                height: 40.0
            }]
        );
        // Past the border: clamped; wholly outside: dropped.
        assert_eq!(
            boxes(&[rect(-10, 60, 39, 109), rect(120, 0, 160, 40)], (100, 80)),
            [Rect {
                x: 0.0,
                y: 60.0,
                width: 40.0,
                height: 20.0
            }]
        );
        // Found on a doubled copy.
        assert_eq!(
            boxes(&[rect(20, 40, 99, 119)], (200, 160)),
            [Rect {
                x: 10.0,
                y: 20.0,
                width: 40.0,
                height: 40.0
            }]
        );
    }

    #[test]
    fn face_boxes_convert_to_inclusive_dlib_rectangles() {
        let face = Rect {
            x: 10.4,
            y: 19.6,
            width: 40.0,
            height: 40.0,
        };
        assert_eq!(
            to_dlib_rect(&face),
            Rectangle {
                left: 10,
                top: 20,
                right: 49,
                bottom: 59
            }
        );
    }
}
