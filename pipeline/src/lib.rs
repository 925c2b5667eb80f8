//! Facecraft's face pipeline (DESIGN §6): pure stages from image bytes to encoded portraits,
//! the inference engines behind small traits, and the driver that runs them in order. It
//! depends on the job contract and on image/ML crates only — no Redis, S3 or HTTP crate — so
//! the compiler keeps it free of I/O; fetching and storing belong to the worker.
//!
//! Stages, each a function over images with a `*Params` struct and its own error enum whose
//! `code()` is an [`ErrorCode`](facecraft_contract::ErrorCode) (checked by the compiler):
//!
//! 1. [`decode`] — bytes → upright RGBA8, limits enforced before allocating ([`jpeg_scan`]
//!    checks JPEG structure first)
//! 2. detect → 3. landmarks ([`face`] traits, [`engines`]) → [`confirm`] the face is real
//! 4. [`align`] — level the eyes
//! 5. [`crop`] — the head-and-shoulders box
//! 6. segment — background removal into the alpha channel ([`face::Segmenter`])
//! 7. [`enhance`] — exposure, white balance, contrast, sharpening
//! 8. [`compose`] — letterbox onto the canvas, optional feathered oval
//! 9. [`encode`] — PNG, and JPEG searched down to fit the byte budget
//!
//! [`portrait::render`] drives them; its [`portrait::RenderError`] maps every failure to a
//! code.

pub mod align;
pub mod compose;
pub mod confirm;
pub mod crop;
pub mod decode;
pub mod encode;
pub mod engines;
pub mod enhance;
pub mod face;
pub mod frame;
pub mod jpeg_scan;
pub mod matte;
pub mod portrait;
pub mod quality;
#[cfg(test)]
mod testdata;
