//! The repository's test photos (`testdata/`, with their licences) for unit tests; one place
//! that knows where they live. `FACECRAFT_TESTDATA_DIR` points elsewhere when set.

use std::path::PathBuf;

use image::RgbImage;

fn dir() -> PathBuf {
    std::env::var_os("FACECRAFT_TESTDATA_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata"))
}

/// The file's bytes; a missing photo fails the test (it must not pass by testing nothing).
pub(crate) fn bytes(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("test photo {}: {e}", path.display()))
}

/// The photo decoded to RGB.
pub(crate) fn rgb(name: &str) -> RgbImage {
    image::load_from_memory(&bytes(name))
        .unwrap_or_else(|e| panic!("test photo {name} does not decode: {e}"))
        .to_rgb8()
}
