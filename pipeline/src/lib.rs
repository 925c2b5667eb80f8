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
//! 7. [`restore`] — optional face restoration ([`face::Restorer`], GPU lane)
//! 8. [`enhance`] — exposure, white balance, contrast, sharpening
//! 9. [`compose`] — letterbox onto the canvas, optional feathered oval
//! 10. [`encode`] — PNG, and JPEG searched down to fit the byte budget
//!
//! [`portrait::render`] drives them; its [`portrait::RenderError`] maps every failure to a
//! code.

pub mod align;
pub mod batch;
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
pub mod resize;
pub mod restore;
#[cfg(test)]
mod testdata;

/// `v` rounded half up to a `u8`, clamped to 0–255 first (NaN → 0). What `v.round()` gives for
/// these values, without the call to libm's `roundf` that the baseline x86-64 target emits
/// for it (no SSE4.1 rounding instruction): per-pixel loops spent a tenth of their time there.
#[inline]
pub(crate) fn round_u8(v: f32) -> u8 {
    // Clamped first, so the cast cannot truncate; +0.5 then truncation rounds half up.
    (v.clamp(0.0, 255.0) + 0.5) as u8
}

#[cfg(test)]
mod round_tests {
    #[test]
    fn round_u8_matches_round_on_the_range() {
        for i in -1000..=300_000 {
            let v = i as f32 / 1000.0;
            assert_eq!(super::round_u8(v), v.round().clamp(0.0, 255.0) as u8, "{v}");
        }
        assert_eq!(super::round_u8(f32::NAN), 0);
        assert_eq!(super::round_u8(f32::INFINITY), 255);
    }
}
