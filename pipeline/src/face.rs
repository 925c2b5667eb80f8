//! Face types and the engine traits the pipeline calls. Engines (dlib, ONNX Runtime) live in
//! `crate::engines` behind Cargo features; the stages only see these traits.

use facecraft_contract::ErrorCode;
use image::{GrayImage, RgbImage};

/// Axis-aligned rectangle in image pixels (top-left origin).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl Rect {
    pub fn center(&self) -> (f32, f32) {
        (self.x + self.width / 2.0, self.y + self.height / 2.0)
    }
    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }
    pub fn right(&self) -> f32 {
        self.x + self.width
    }
    pub fn bottom(&self) -> f32 {
        self.y + self.height
    }
    /// Intersection over union.
    pub fn iou(&self, other: &Rect) -> f32 {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = self.right().min(other.right());
        let y1 = self.bottom().min(other.bottom());
        let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
}

/// The landmarks alignment needs. "Left" and "right" are as seen in the image: `eye_left` is
/// the eye with the smaller x in an upright face (the subject's right eye).
#[derive(Debug, Clone, PartialEq)]
pub struct FaceLandmarks {
    /// Centre of the eye on the image's left.
    pub eye_left: [f32; 2],
    /// Centre of the eye on the image's right.
    pub eye_right: [f32; 2],
    /// Tip or base of the nose.
    pub nose: [f32; 2],
    /// Every point the model gave, in its own order (5 or 68 for dlib, 5 for RetinaFace).
    pub points: Vec<[f32; 2]>,
}

/// One face found by a detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub bbox: Rect,
    /// Detector confidence; its scale depends on the detector (see `FaceDetector::name`).
    pub score: f32,
    /// Landmarks, when the detector gives them itself (RetinaFace does, dlib does not).
    pub landmarks: Option<FaceLandmarks>,
}

/// Failures of an inference engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A model file is missing or unreadable; names the file.
    #[error("model file {path} is missing or unreadable: {reason}")]
    ModelUnavailable { path: String, reason: String },
    /// The engine was not loaded in this worker (feature off or model not configured).
    #[error("{0} is not available in this worker")]
    NotLoaded(String),
    #[error("inference failed: {0}")]
    Inference(String),
    /// `FACECRAFT_DEVICE=cuda` and CUDA cannot be used (no CUDA in the build or the runtime, no
    /// device visible).
    #[error("FACECRAFT_DEVICE=cuda, but {0}")]
    DeviceUnavailable(String),
}

impl EngineError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::ModelUnavailable { .. } | Self::NotLoaded(_) | Self::DeviceUnavailable(_) => {
                ErrorCode::ModelUnavailable
            }
            Self::Inference(_) => ErrorCode::Internal,
        }
    }
}

/// Finds faces.
pub trait FaceDetector: Send + Sync {
    /// Short name for logs and errors, e.g. `hog`.
    fn name(&self) -> &'static str;
    /// Where it runs: `cpu` or `cuda`.
    fn device(&self) -> &'static str {
        "cpu"
    }
    /// Every face found, in any order.
    fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>, EngineError>;
}

/// Places landmarks on a detected face.
pub trait Landmarker: Send + Sync {
    fn name(&self) -> &'static str;
    /// Where it runs: `cpu` or `cuda`.
    fn device(&self) -> &'static str {
        "cpu"
    }
    fn landmarks(&self, img: &RgbImage, face: &Rect) -> Result<FaceLandmarks, EngineError>;
}

/// Separates a person from the background.
pub trait Segmenter: Send + Sync {
    fn name(&self) -> &'static str;
    /// Where it runs: `cpu` or `cuda`.
    fn device(&self) -> &'static str {
        "cpu"
    }
    /// A matte the size of `img`: 255 = person, 0 = background.
    fn matte(&self, img: &RgbImage) -> Result<GrayImage, EngineError>;
}

/// Restores faces (GFPGAN-class networks): a `size × size` face, aligned as the network's
/// training faces were (see [`crate::restore::face_transform`]), in; the restored face out.
pub trait Restorer: Send + Sync {
    fn name(&self) -> &'static str;
    /// Where it runs: `cpu` or `cuda`.
    fn device(&self) -> &'static str {
        "cpu"
    }
    /// The side of the square face it takes and gives (512 for GFPGAN).
    fn size(&self) -> u32;
    fn restore(&self, face: &RgbImage) -> Result<RgbImage, EngineError>;
}
