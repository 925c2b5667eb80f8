//! Image stages of the portrait pipeline (DESIGN §6): decode → [detect → landmarks → align →
//! segment → crop → enhance] → compose → encode. The face stages slot in between decode and
//! compose.

pub mod compose;
pub mod decode;
pub mod encode;
