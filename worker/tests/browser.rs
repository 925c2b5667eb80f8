//! The web page at `/` in headless Chromium, driven through chromedriver (WebDriver): a photo
//! uploaded through the form comes back as a portrait of the chosen preset, shown from its
//! presigned S3 URL under the page's Content-Security-Policy, with the job's quality report.
//! Real API (with API keys on), Redis, S3 and worker process, as in backbone.rs.
//!
//! Needs `chromium` and `chromedriver` on PATH (Debian: `chromium chromium-driver`). Without
//! them the test fails when `CI` is set, and is skipped with a loud message otherwise.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{json, Value};
use support::{decode, testdata, Stack, StackOptions};

const KEY: &str = "page-test-key-0123456789";
/// Passport 35 × 45 mm at 300 dpi: not square, so width and height cannot be swapped unseen.
const PASSPORT: (u64, u64) = (413, 531);
/// `#3060c0` as the page's colour input sends it.
const BACKGROUND: [u8; 3] = [0x30, 0x60, 0xc0];
const LONG: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_uploads_a_photo_and_shows_the_portrait() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let stack = Stack::start(StackOptions {
        api_keys: Some(format!("page:{KEY}")),
        ..StackOptions::default()
    })
    .await;
    let _worker = stack.spawn_worker("w1");

    check_headers(&stack).await;

    let driver = browser.start_driver(&stack.prefix).await;
    let client = driver.session().await;
    // Close the browser whatever happens, then report the test's own failure.
    let outcome = std::panic::AssertUnwindSafe(drive(&client, &stack))
        .catch_unwind()
        .await;
    let _ = client.close().await;
    if let Err(panic) = outcome {
        eprintln!("chromedriver log: {}", driver.log.display());
        std::panic::resume_unwind(panic);
    }
}

/// Content types, caching and the policy, as a browser receives them.
async fn check_headers(stack: &Stack) {
    let s3 = support::env("FACECRAFT_S3_ENDPOINT");
    let s3_origin = s3.trim_end_matches('/');
    let resp = stack.http.get(stack.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    for directive in [
        "default-src 'none'".to_owned(),
        "script-src 'self'".to_owned(),
        "style-src 'self'".to_owned(),
        "connect-src 'self'".to_owned(),
        format!("img-src 'self' blob: {s3_origin}"),
        "frame-ancestors 'none'".to_owned(),
    ] {
        assert!(
            csp.split(';').any(|d| d.trim() == directive),
            "no `{directive}` in {csp}"
        );
    }
    let etag = h["etag"].clone();
    let html = resp.text().await.unwrap();
    assert!(html.contains("<form id=\"job-form\""), "{html}");
    let again = stack
        .http
        .get(stack.url("/"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // Assets are linked with a version, and only the current version may be cached for good.
    for (name, content_type) in [
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/style.css", "text/css; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let start = html.find(&format!("{name}?v=")).unwrap_or_else(|| {
            panic!("index.html does not link {name} with a version");
        });
        let link = &html[start..html[start..].find('"').unwrap() + start];
        let resp = stack.http.get(stack.url(link)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{link}");
        assert_eq!(resp.headers()["content-type"], content_type, "{link}");
        assert_eq!(
            resp.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{link}"
        );
        let stale = stack
            .http
            .get(stack.url(&format!("{name}?v=old")))
            .send()
            .await
            .unwrap();
        assert_eq!(stale.headers()["cache-control"], "no-cache", "{name}");
    }
}

async fn drive(client: &Client, stack: &Stack) {
    client.goto(&stack.url("/")).await.unwrap();
    check_sse_parser(client).await;

    // Without a key the API answers 401; the page shows its message and code.
    client
        .find(Locator::Css("#preset"))
        .await
        .unwrap()
        .select_by_value("passport")
        .await
        .unwrap();
    // The preset shows its own values: no oval, its background.
    let shown = js(
        client,
        "return [document.getElementById('oval').checked, document.getElementById('background').value,
                 document.getElementById('custom-size').hidden];",
    )
    .await;
    assert_eq!(shown, json!([false, "#f0f0f0", true]));
    // The oval back on, so the corner checked below is background whatever the matte does.
    click(client, "#oval").await;
    client
        .execute(
            "const c = document.getElementById('background');
             c.value = '#3060c0';
             c.dispatchEvent(new Event('input', {bubbles: true}));",
            vec![],
        )
        .await
        .unwrap();
    let photo = testdata("astronaut.png").canonicalize().unwrap();
    choose_file(client, &photo).await;
    click(client, "#submit").await;
    let error = wait_for_error(client).await;
    assert!(
        error.contains("unauthorized") && error.contains("HTTP 401"),
        "{error}"
    );

    // The key goes in (its box opened on the 401), is remembered, and the job runs.
    client
        .find(Locator::Css("#api-key"))
        .await
        .unwrap()
        .send_keys(KEY)
        .await
        .unwrap();
    let stored = js(client, "return localStorage.getItem('facecraft.apiKey');").await;
    assert_eq!(stored, KEY);
    click(client, "#submit").await;

    let shown = wait_until(
        client,
        LONG,
        "the result image",
        |v| !v.is_null(),
        r#"
        const err = document.getElementById('error');
        if (!err.hidden) return {error: err.textContent};
        const img = document.getElementById('result-img');
        const panel = document.getElementById('result-panel');
        if (panel.hidden || !img.complete || img.naturalWidth === 0) return null;
        return {
            width: img.naturalWidth,
            height: img.naturalHeight,
            src: img.src,
            alt: img.alt,
            status: document.getElementById('status').textContent,
            stages: Object.fromEntries([...document.querySelectorAll('#stages li')]
                .map((li) => [li.dataset.stage, li.dataset.state])),
            downloads: [...document.querySelectorAll('#downloads a')]
                .map((a) => ({href: a.href, download: a.download, text: a.textContent})),
            quality: document.getElementById('quality').hidden ? null : {
                badges: [...document.querySelectorAll('#quality-warnings li')]
                    .map((li) => li.dataset.warning || li.textContent),
                rows: document.querySelectorAll('#quality-table tbody tr').length,
            },
            csp: window.Facecraft.cspViolations,
        };
    "#,
    )
    .await;
    assert!(
        shown["error"].is_null(),
        "the page shows an error: {shown:#}"
    );
    assert_eq!(
        (shown["width"].as_u64(), shown["height"].as_u64()),
        (Some(PASSPORT.0), Some(PASSPORT.1)),
        "{shown:#}"
    );
    assert_eq!(shown["alt"], "Portrait, 413 × 531 pixels");
    assert_eq!(shown["status"], "Done.");
    for stage in ["fetch", "decode", "detect", "compose", "encode", "store"] {
        assert_eq!(shown["stages"][stage], "done", "{stage}: {shown:#}");
    }
    assert_eq!(shown["csp"], json!([]), "CSP violations: {shown:#}");
    // The image came from S3 itself, not through the API.
    let s3 = support::env("FACECRAFT_S3_ENDPOINT");
    assert!(
        shown["src"]
            .as_str()
            .unwrap()
            .starts_with(s3.trim_end_matches('/')),
        "{shown:#}"
    );

    // Both downloads work, and the PNG is the portrait asked for: size and background.
    let downloads = shown["downloads"].as_array().unwrap();
    assert_eq!(downloads.len(), 2, "{shown:#}");
    for d in downloads {
        let href = d["href"].as_str().unwrap();
        let bytes = stack.http.get(href).send().await.unwrap();
        assert_eq!(bytes.status(), 200, "{d}");
        let img = decode(&bytes.bytes().await.unwrap());
        assert_eq!(
            (u64::from(img.width()), u64::from(img.height())),
            PASSPORT,
            "{d}"
        );
        if d["download"].as_str().unwrap().ends_with(".png") {
            // Outside the oval, in a corner, only the background shows.
            let px = img.get_pixel(2, 2).0;
            assert_eq!(px[..3], BACKGROUND, "corner pixel {px:?}");
        }
    }

    // The job asked for the preset by name, with only what the form changed on top of it.
    let download = downloads[0]["download"].as_str().unwrap();
    let id = download
        .strip_prefix("portrait-")
        .and_then(|d| d.rsplit_once('.'))
        .map(|(id, _)| id)
        .unwrap();
    let status = stack.wait_for_as(id, Some(KEY), &["succeeded"], LONG).await;
    let params = &status["params"];
    assert_eq!(params["preset"], "passport", "{params:#}");
    assert_eq!(params["background"], json!(BACKGROUND), "{params:#}");
    assert_eq!(params["oval_mask"], true, "{params:#}");
    assert_eq!(params["quality"], "report", "{params:#}");
    // The page shows the job's quality report when there is one, its warnings as badges.
    match status["result"].get("quality") {
        Some(report) => {
            let quality = &shown["quality"];
            assert!(quality.is_object(), "no quality report shown: {shown:#}");
            let warnings = report["warnings"].as_array().unwrap();
            if warnings.is_empty() {
                assert_eq!(quality["badges"], json!(["No warnings"]), "{shown:#}");
            } else {
                assert_eq!(&quality["badges"], &report["warnings"], "{shown:#}");
            }
            assert!(quality["rows"].as_u64().unwrap() >= 8, "{shown:#}");
        }
        None => assert!(shown["quality"].is_null(), "{shown:#}"),
    }

    let shot = save_screenshot(client, "page-result.png").await;
    println!("screenshot: {}", shot.display());
    if shown["quality"].is_object() {
        js(
            client,
            "document.getElementById('quality').scrollIntoView({block: 'end'}); return null;",
        )
        .await;
        let shot = save_screenshot(client, "page-quality.png").await;
        println!("screenshot: {}", shot.display());
    }

    // On a phone the page fits the width: nothing scrolls sideways.
    client.set_window_size(390, 844).await.unwrap();
    let widths = js(
        client,
        "return [document.documentElement.scrollWidth, window.innerWidth];",
    )
    .await;
    let (scroll, inner) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(inner <= 400, "window did not shrink: {widths}");
    assert!(scroll <= inner, "page is wider than a phone: {widths}");
    let shot = save_screenshot(client, "page-phone.png").await;
    println!("screenshot: {}", shot.display());
    client.set_window_size(1280, 1300).await.unwrap();

    check_quality_rendering(client).await;

    // A reload keeps the key; a file that is no image fails the job, and the page says why.
    client.refresh().await.unwrap();
    let key = js(client, "return document.getElementById('api-key').value;").await;
    assert_eq!(key, KEY);
    check_form_params(client).await;
    let junk = std::env::temp_dir().join(format!("{}-not-a-photo.png", stack.prefix));
    std::fs::write(&junk, b"this is not an image").unwrap();
    choose_file(client, &junk).await;
    click(client, "#submit").await;
    let error = wait_for_error(client).await;
    let _ = std::fs::remove_file(&junk);
    assert!(error.contains("unsupported_format"), "{error}");
}

/// A made-up quality report drawn by the page: a row per measurement, a badge per warning; a
/// strict failure's warnings as badges in the error box.
async fn check_quality_rendering(client: &Client) {
    let got = js(
        client,
        r#"
        const F = window.Facecraft;
        const read = () => ({
            hidden: document.getElementById('quality').hidden,
            badges: [...document.querySelectorAll('#quality-warnings li')].map((li) => li.textContent),
            rows: Object.fromEntries([...document.querySelectorAll('#quality-table tbody tr')]
                .map((tr) => [tr.dataset.field, tr.querySelector('td').textContent])),
        });
        F.renderQuality({
            eye_tilt_deg: 0.44, yaw_deg: -23.1, eye_offset_pct: 1.26, eye_height_pct: 53,
            head_height_ratio: 0.7449, padded_pct: 0, background_uniformity: 0.973,
            sharpness: 182.4, face_luminance: 131.2, face_clipped_pct: 0.3, upscale: 2.5,
            warnings: ['turned_head', 'low_resolution', 'some_new_warning'],
        });
        const full = read();
        F.renderQuality({eye_tilt_deg: 0, warnings: []});
        const clean = read();
        F.renderQuality(null);
        const none = read();
        F.showError(new F.ApiError('the portrait fails the quality check', 'quality_rejected', null),
            ['blurry', 'dark']);
        const error = [...document.querySelectorAll('#error-warnings li')].map((li) => li.dataset.warning);
        const errorShown = !document.getElementById('error-warnings').hidden;
        F.showError(new F.ApiError('no face', 'no_face_detected', null));
        const plainError = document.getElementById('error-warnings').hidden;
        return {full, clean, none, error, errorShown, plainError};
    "#,
    )
    .await;
    let full = &got["full"];
    assert_eq!(full["hidden"], false, "{got:#}");
    assert_eq!(
        full["badges"],
        json!(["Head turned", "Low resolution", "some new warning"]),
        "{got:#}"
    );
    assert_eq!(full["rows"].as_object().unwrap().len(), 11, "{got:#}");
    for (field, text) in [
        ("eye_tilt_deg", "0.4°"),
        ("yaw_deg", "-23.1°"),
        ("eye_offset_pct", "+1.3 %"),
        ("head_height_ratio", "74 % of the frame"),
        ("padded_pct", "0.0 %"),
        ("sharpness", "182"),
        ("face_luminance", "131 / 255"),
        ("upscale", "2.50×"),
    ] {
        assert_eq!(full["rows"][field], text, "{field}: {got:#}");
    }
    assert_eq!(got["clean"]["badges"], json!(["No warnings"]), "{got:#}");
    assert_eq!(
        got["clean"]["rows"],
        json!({"eye_tilt_deg": "0.0°"}),
        "{got:#}"
    );
    assert_eq!(got["none"]["hidden"], true, "{got:#}");
    assert_eq!(got["error"], json!(["blurry", "dark"]), "{got:#}");
    assert_eq!(got["errorShown"], true, "{got:#}");
    assert_eq!(got["plainError"], true, "{got:#}");
}

/// What the form sends: a preset by name with only the values changed from it, the strict
/// quality flag, and a custom size without a preset.
async fn check_form_params(client: &Client) {
    client
        .find(Locator::Css("#preset"))
        .await
        .unwrap()
        .select_by_value("badge")
        .await
        .unwrap();
    click(client, "#strict").await;
    let badge = js(client, "return window.Facecraft.formParams();").await;
    assert_eq!(
        badge,
        json!({"preset": "badge", "enhance": true, "quality": "strict"})
    );
    client
        .find(Locator::Css("#preset"))
        .await
        .unwrap()
        .select_by_value("none")
        .await
        .unwrap();
    let custom = js(client, "return window.Facecraft.formParams();").await;
    assert_eq!(
        custom,
        json!({"width": 480, "height": 640, "background": "#f0f0f0", "oval_mask": false,
               "enhance": true, "quality": "strict"}),
        "a custom size starts from the last preset's"
    );
}

/// The stream parser on what an SSE endpoint may send: CRLF split across chunks, comments,
/// multi-line data, an event cut off by the end of the stream.
async fn check_sse_parser(client: &Client) {
    let got = js(
        client,
        r#"
        const feed = (chunks) => {
            const p = new window.Facecraft.SseParser();
            const out = [];
            for (const c of chunks) out.push(...p.push(c));
            out.push(...p.end());
            return out;
        };
        return {
            crlf_split: feed(['event: status\r', '\ndata: {"a":1}\r\n\r', '\n']),
            comments_and_lines: feed([': keep-alive\n\nevent: status\ndata: one\ndata:two\n\n']),
            default_type: feed(['data: x\n\nevent: status\n\n']),
            cut_off: feed(['event: status\ndata: {"x":1}\n']),
            char_by_char: feed(Array.from('event: status\r\ndata: {"state":"running"}\r\n\r\n')),
        };
    "#,
    )
    .await;
    let status = |data: &str| json!([{"event": "status", "data": data, "id": ""}]);
    assert_eq!(got["crlf_split"], status(r#"{"a":1}"#), "{got:#}");
    assert_eq!(got["comments_and_lines"], status("one\ntwo"), "{got:#}");
    assert_eq!(
        got["default_type"],
        json!([{"event": "message", "data": "x", "id": ""}]),
        "{got:#}"
    );
    assert_eq!(got["cut_off"], json!([]), "{got:#}");
    assert_eq!(
        got["char_by_char"],
        status(r#"{"state":"running"}"#),
        "{got:#}"
    );
}

async fn choose_file(client: &Client, path: &Path) {
    client
        .find(Locator::Css("#photo"))
        .await
        .unwrap()
        .send_keys(path.to_str().unwrap())
        .await
        .unwrap();
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap()
}

/// The text of the page's error box once it shows.
async fn wait_for_error(client: &Client) -> String {
    let v = wait_until(
        client,
        LONG,
        "the error box",
        Value::is_string,
        r#"
        const err = document.getElementById('error');
        return err.hidden ? null : err.textContent.replace(/\s+/g, ' ').trim();
    "#,
    )
    .await;
    v.as_str().unwrap().to_owned()
}

/// Runs `script` until `done` accepts its value; panics with the last value at the deadline.
async fn wait_until(
    client: &Client,
    within: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
    script: &str,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = js(client, script).await;
        if done(&v) {
            return v;
        }
        if Instant::now() > deadline {
            let status = js(
                client,
                "return document.getElementById('status').textContent;",
            )
            .await;
            panic!("{what} never showed within {within:?}; last: {v}; page status: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn save_screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../out/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.canonicalize().unwrap().join(name);
    std::fs::write(&path, png).unwrap();
    path
}

/// Chromium and chromedriver found on PATH.
struct Browser {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Browser {
    /// `None` (with a loud message) when not installed and not in CI; in CI a missing browser
    /// is a failure, so the page is never silently left untested.
    fn find() -> Option<Self> {
        let chromium = ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|n| on_path(n));
        let chromedriver = on_path("chromedriver");
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Some(Self {
                chromium,
                chromedriver,
            }),
            (chromium, chromedriver) => {
                let missing = format!(
                    "browser test needs chromium ({}) and chromedriver ({}) on PATH; \
                     install them with `apt-get install --no-install-recommends chromium chromium-driver`",
                    if chromium.is_some() { "found" } else { "missing" },
                    if chromedriver.is_some() { "found" } else { "missing" },
                );
                assert!(std::env::var_os("CI").is_none(), "{missing}");
                eprintln!("\n!!!!!!!! SKIPPED: {missing} !!!!!!!!\n");
                None
            }
        }
    }

    async fn start_driver(&self, prefix: &str) -> Driver {
        // chromedriver takes a port, not a listener: find a free one and hand it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("{prefix}-chromedriver.log"));
        let profile = std::env::temp_dir().join(format!("{prefix}-chromium-profile"));
        let child = Command::new(&self.chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium: self.chromium.clone(),
            profile,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = reqwest::Client::new();
        loop {
            let ready = http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if let Some(r) = ready {
                let body: Value = r.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start on {}; log: {}",
                driver.url,
                driver.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A chromedriver process; killed (with the browser it started) when dropped.
struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
    profile: PathBuf,
    log: PathBuf,
}

impl Driver {
    async fn session(&self) -> Client {
        // The flags the machine notes give for headless Chromium here: no sandbox (root),
        // no GPU, and none of the background connections a closed network refuses.
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,1300".to_owned(),
            format!("--user-data-dir={}", self.profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": self.chromium, "args": args}),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no WebDriver session from {}: {e}; log: {}",
                    self.url,
                    self.log.display()
                )
            })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
