//! From input bytes to encoded portraits: the stages of DESIGN §6 in order, each timed and
//! reported. Pure CPU work; callers run it on a blocking thread.
//!
//! The face stages (detect, landmarks, align, segment, crop, enhance) slot in between
//! `decode` and `compose`.

use std::time::Instant;

use facecraft_shared::job::{FaceInfo, Format, JobParams};
use facecraft_shared::ErrorCode;

use crate::pipeline::compose::{self, Background, ComposeParams};
use crate::pipeline::decode::{self, DecodeError, DecodeParams};
use crate::pipeline::encode::{self, EncodeError, JpegParams};

/// A stage boundary, with the share of the work done when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Decode,
    Compose,
    Encode,
}

impl Stage {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Compose => "compose",
            Self::Encode => "encode",
        }
    }

    pub const fn percent(self) -> u8 {
        match self {
            Self::Decode => 15,
            Self::Compose => 70,
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
    /// Milliseconds per stage, in stage order.
    pub timings: Vec<(&'static str, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("cancelled")]
    Cancelled,
}

impl RenderError {
    pub fn code(&self) -> ErrorCode {
        let name = match self {
            Self::Decode(e) => e.code(),
            Self::Encode(e) => e.code(),
            Self::Cancelled => return ErrorCode::Internal,
        };
        ErrorCode::from_code(name).unwrap_or(ErrorCode::Internal)
    }
}

/// Runs the pipeline. `on_stage` is called at each stage boundary and returns `false` to stop
/// (the job was cancelled).
pub fn render(
    bytes: &[u8],
    params: &JobParams,
    limits: &DecodeParams,
    on_stage: &mut dyn FnMut(Stage) -> bool,
) -> Result<Portrait, RenderError> {
    let mut timings = Vec::new();
    let mut enter = |stage: Stage| {
        if on_stage(stage) {
            Ok(Instant::now())
        } else {
            Err(RenderError::Cancelled)
        }
    };

    let t = enter(Stage::Decode)?;
    let decoded = decode::decode(bytes, limits)?;
    timings.push((Stage::Decode.name(), ms(t)));

    let t = enter(Stage::Compose)?;
    let background = if params.transparent {
        Background::Transparent
    } else {
        Background::Color(params.background.0)
    };
    let canvas = compose::letterbox(
        &decoded.image,
        &ComposeParams {
            width: params.width,
            height: params.height,
            background,
        },
    );
    timings.push((Stage::Compose.name(), ms(t)));

    let t = enter(Stage::Encode)?;
    let mut outputs = Vec::new();
    for format in &params.formats {
        let bytes = match format {
            Format::Png => encode::encode_png(&canvas, params.transparent)?,
            Format::Jpg => {
                // JPEG has no alpha: a transparent portrait is flattened onto `background`.
                let rgb = compose::flatten(&canvas, params.background.0);
                let jpeg = encode::encode_jpeg_within(
                    &rgb,
                    &JpegParams {
                        max_bytes: params.jpeg_max_bytes as usize,
                        ..JpegParams::default()
                    },
                )?;
                jpeg.bytes
            }
        };
        outputs.push(Rendered {
            format: *format,
            bytes,
            width: canvas.width(),
            height: canvas.height(),
        });
    }
    timings.push((Stage::Encode.name(), ms(t)));

    Ok(Portrait {
        outputs,
        face: None,
        timings,
    })
}

fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}
