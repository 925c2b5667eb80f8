//! Command-line pieces that more than one binary uses: the job-parameter flags
//! (`facecraft-worker process` and the `facecraft` client take the same ones) and the
//! expansion of folders into image files.

use std::path::PathBuf;

use clap::Args;
use serde_json::{Map, Value};

use crate::job::{JobParams, Rgb};

/// Portrait parameters as flags; anything without a flag of its own goes through `--param`.
#[derive(Debug, Clone, Default, Args)]
pub struct ParamArgs {
    /// Output width in pixels [default: 648].
    #[arg(long)]
    pub width: Option<u32>,
    /// Output height in pixels [default: 648].
    #[arg(long)]
    pub height: Option<u32>,
    /// Background colour, "r,g,b" or "#rrggbb" [default: 240,240,240].
    #[arg(long, value_parser = |s: &str| Rgb::parse(s))]
    pub background: Option<Rgb>,
    /// Transparent background (PNG keeps alpha).
    #[arg(long)]
    pub transparent: bool,
    /// Output formats, comma-separated: png, jpg, webp [default: png,jpg].
    #[arg(long, value_delimiter = ',')]
    pub formats: Vec<String>,
    /// Largest JPEG in bytes [default: 101376].
    #[arg(long)]
    pub jpeg_max_bytes: Option<u32>,
    /// Any other job parameter as name=value (JSON value or plain text), e.g. face_margin=0.4.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

impl ParamArgs {
    /// The flags as a JSON object of job parameters (only those given).
    pub fn to_json(&self) -> Result<Map<String, Value>, String> {
        let mut m = Map::new();
        if let Some(w) = self.width {
            m.insert("width".into(), w.into());
        }
        if let Some(h) = self.height {
            m.insert("height".into(), h.into());
        }
        if let Some(b) = self.background {
            m.insert("background".into(), b.to_hex().into());
        }
        if self.transparent {
            m.insert("transparent".into(), true.into());
        }
        if !self.formats.is_empty() {
            m.insert("formats".into(), self.formats.clone().into());
        }
        if let Some(j) = self.jpeg_max_bytes {
            m.insert("jpeg_max_bytes".into(), j.into());
        }
        for p in &self.params {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("--param `{p}` is not NAME=VALUE"))?;
            let value =
                serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_owned()));
            m.insert(k.to_owned(), value);
        }
        Ok(m)
    }

    /// The flags as job parameters, validated like an API request.
    pub fn job_params(&self) -> Result<JobParams, String> {
        let params: JobParams =
            serde_json::from_value(Value::Object(self.to_json()?)).map_err(|e| e.to_string())?;
        params.validate()?;
        Ok(params)
    }
}

/// File extensions taken from folders.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// Files as given, and the image files (by extension, sorted) of folders, one level deep.
pub fn image_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(|e| format!("{}: {e}", input.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                            IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                        })
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Format;

    #[test]
    fn flags_become_validated_params() {
        let args = ParamArgs {
            width: Some(300),
            background: Some(Rgb::parse("#102030").expect("colour")),
            formats: vec!["png".into()],
            params: vec!["face_margin=0.4".into(), "oval_mask=false".into()],
            ..ParamArgs::default()
        };
        let p = args.job_params().expect("valid");
        assert_eq!(p.width, 300);
        assert_eq!(p.formats, vec![Format::Png]);
        let json = args.to_json().expect("json");
        assert_eq!(json["background"], "#102030");
        assert_eq!(json["face_margin"], 0.4);
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let e = ParamArgs {
            params: vec!["nonsense".into()],
            ..ParamArgs::default()
        }
        .job_params()
        .unwrap_err();
        assert!(e.contains("NAME=VALUE"), "{e}");
        let e = ParamArgs {
            params: vec!["no_such_param=1".into()],
            ..ParamArgs::default()
        }
        .job_params()
        .unwrap_err();
        assert!(e.contains("no_such_param"), "{e}");
        let e = ParamArgs {
            width: Some(1),
            ..ParamArgs::default()
        }
        .job_params()
        .unwrap_err();
        assert!(e.contains("width"), "{e}");
    }

    #[test]
    fn folders_expand_to_their_images_sorted() {
        let dir = std::env::temp_dir().join(format!("fc-cli-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        for name in ["b.JPG", "a.png", "notes.txt"] {
            std::fs::write(dir.join(name), b"x").expect("write");
        }
        let files = image_files(&[dir.clone(), PathBuf::from("/x/single.heic")]).expect("list");
        let names: Vec<_> = files
            .iter()
            .map(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(names, ["a.png", "b.JPG", "single.heic"]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
