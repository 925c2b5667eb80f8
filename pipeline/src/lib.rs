//! The face pipeline (DESIGN §6): pure stages from bytes to portrait files.
//!
//! Stage order, each a function over images with a `*Params` struct and its own error enum
//! whose `code()` feeds HTTP bodies and failed-job records:
//!
//! 1. fetch — object bytes from S3 (in the job runner, not here)
//! 2. [`decode`] — bytes → upright RGBA8, limits enforced before allocating
//! 3. detect → 4. landmarks → 5. align → 6. segment → 7. crop → 8. enhance → 9. restore:
//!    the face stages, to be slotted in here, between decode and compose; segment puts
//!    its matte in the alpha channel, crop cuts the head-and-shoulders box
//! 10. [`compose`] — letterbox onto the canvas, optional feathered oval
//! 11. [`encode`] — PNG, and JPEG searched down to fit the byte budget
//! 12. store — results to S3 (in the job runner)

pub mod align;
pub mod compose;
pub mod confirm;
pub mod crop;
pub mod decode;
pub mod encode;
pub mod enhance;
pub mod face;
pub mod jpeg_scan;
