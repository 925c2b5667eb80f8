//! `facecraft-worker process` on local files, several at once: every file gets its line and
//! its outputs, a bad file fails alone, and the exit code says so. No Redis or S3.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn several_files_at_once_each_get_their_portrait_or_their_error() {
    let dir = std::env::temp_dir().join(format!("facecraft-process-{}", std::process::id()));
    let (inputs, out) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&inputs).unwrap();
    let photos = ["astronaut.png", "hopper.jpg", "obama.jpg"];
    for name in photos {
        std::fs::copy(repo().join("testdata").join(name), inputs.join(name)).unwrap();
    }
    std::fs::write(inputs.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_facecraft-worker"))
        .current_dir(repo())
        .args([
            "process",
            "--jobs",
            "2",
            "--formats",
            "png",
            "--timings",
            "--out",
        ])
        .arg(&out)
        .arg(&inputs)
        .env("FACECRAFT_ONNX_THREADS", "auto")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "one file failed:\n{stdout}");
    assert!(stdout.contains("3 succeeded, 1 failed"), "{stdout}");
    assert!(
        stdout.contains("broken.png: FAILED unsupported_format"),
        "{stdout}"
    );
    for i in 1..=4 {
        assert!(
            stdout.contains(&format!("[{i}/4] ")),
            "line {i} missing:\n{stdout}"
        );
    }
    for name in photos {
        let stem = name.split('.').next().unwrap();
        let png = out.join(format!("{stem}.png"));
        let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert_eq!((img.width(), img.height()), (648, 648));
    }
    assert_eq!(stdout.matches("    quality: ").count(), 3, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cuda_device_on_a_build_without_cuda_is_refused_at_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_facecraft-worker"))
        .current_dir(repo())
        .args(["process", "--out"])
        .arg(std::env::temp_dir().join("facecraft-process-cuda"))
        .arg(repo().join("testdata/astronaut.png"))
        .env("FACECRAFT_DEVICE", "cuda")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // A CUDA build here has no GPU and a CPU-only ONNX Runtime, so the provider cannot
    // register either: in both builds the start must fail rather than fall back to the CPU.
    assert!(!output.status.success(), "{all}");
    assert!(all.contains("FACECRAFT_DEVICE=cuda"), "{all}");
    if !cfg!(feature = "cuda") {
        assert!(all.contains("no CUDA support"), "{all}");
    }
}

#[test]
fn logs_go_to_stderr_and_results_stay_alone_on_stdout() {
    let out = std::env::temp_dir().join(format!("facecraft-process-log-{}", std::process::id()));
    let run = |filter: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_facecraft-worker"));
        cmd.current_dir(repo())
            .args(["process", "--formats", "png", "--out"])
            .arg(&out)
            .arg(repo().join("testdata/astronaut.png"))
            .env_remove("FACECRAFT_LOG_FORMAT")
            .env_remove("FACECRAFT_LOG")
            .env_remove("RUST_LOG");
        if let Some(f) = filter {
            cmd.env("RUST_LOG", f);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{o:?}");
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // Asked for: the engines' start-up lines reach stderr, as text.
    let (stdout, stderr) = run(Some("info"));
    assert!(stderr.contains("models loaded"), "{stderr}");
    assert!(
        !stderr.trim_start().starts_with('{'),
        "text, not JSON: {stderr}"
    );
    assert!(!stdout.contains("models loaded"), "{stdout}");
    assert!(stdout.contains("1 succeeded, 0 failed"), "{stdout}");
    // By default only warnings and errors, of which a clean run has none.
    let (stdout, stderr) = run(None);
    assert!(!stderr.contains("INFO"), "{stderr}");
    assert!(stdout.contains("1 succeeded, 0 failed"), "{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
