//! The OpenAPI document against a live API on real Redis and S3: it lists exactly the routes
//! below, each one answers (not the 404/405 fallbacks) with a status the document names, the
//! API-key requirement it declares holds, and real bodies have the documented shape. `/docs`
//! and `/openapi.json` need no key. (The API's unit tests check the document's validity and
//! that the router serves nothing undocumented.)
#![allow(clippy::unwrap_used)]

// The stack harness the worker's end-to-end suites use; this suite starts no worker.
#[path = "../../worker/tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use support::{Stack, StackOptions};

/// Every operation the API serves on this branch.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/{id}"),
    ("DELETE", "/v1/jobs/{id}"),
    ("GET", "/v1/jobs/{id}/result/{format}"),
    ("POST", "/v1/jobs/{id}/retry"),
    ("GET", "/v1/dead"),
    ("POST", "/v1/uploads"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/"),
    ("GET", "/static/app.js"),
    ("GET", "/static/style.css"),
    ("GET", "/favicon.svg"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/docs.js"),
    ("GET", "/docs/docs.css"),
    ("GET", "/v1/jobs/{id}/events"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/process"),
    ("POST", "/api/v1/process/quick"),
    ("POST", "/api/v1/process/batch"),
    ("GET", "/api/v1/download/{job_id}/{format}"),
    ("DELETE", "/api/v1/jobs/{job_id}"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/status"),
    ("POST", "/v1/batches"),
    ("GET", "/v1/batches/{id}"),
    ("GET", "/v1/batches/{id}/zip"),
];

// ---------------------------------------------------------------------------------------------
// COMING: routes being added on other branches. After merging one, annotate its handler with
// `#[utoipa::path]`, add it to `paths(...)` in api/src/openapi.rs, then MOVE its line from here
// up into ROUTES. The test fails while a documented route is still listed here.
const COMING: &[(&str, &str)] = &[];
// ---------------------------------------------------------------------------------------------

const KEY: &str = "acme-key-0123456789abcdef";

/// The error code of an error body: `code` on `/v1`, FastAPI's `detail` on the Python-compatible
/// routes.
fn error_code<'a>(path: &str, body: &'a Value) -> &'a str {
    let field = if path.starts_with("/api/v1/") || path == "/status" {
        "detail"
    } else {
        "code"
    };
    body[field].as_str().unwrap_or_default()
}

async fn keyed_stack() -> Stack {
    Stack::start(StackOptions {
        api_keys: Some(format!("acme:{KEY}")),
        ..StackOptions::default()
    })
    .await
}

async fn document(stack: &Stack) -> Value {
    let resp = stack
        .http
        .get(stack.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "/openapi.json needs no key");
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    resp.json().await.unwrap()
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "post", "put", "patch", "delete", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                ops.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    ops
}

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            s if s.starts_with('{') && s.contains("format") => "png",
            s if s.starts_with('{') => "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn call(stack: &Stack, method: &str, path: &str, key: Option<&str>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = stack.http.request(method, stack.url(&concrete(path)));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_exactly_the_routes_and_each_answers_as_documented() {
    let stack = keyed_stack().await;
    let doc = document(&stack).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));

    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let documented = documented(&doc);
    for (m, p) in COMING {
        assert!(
            !documented.contains(&((*m).to_owned(), (*p).to_owned())),
            "{m} {p} is documented now: move it from COMING into ROUTES"
        );
    }
    assert_eq!(documented, expected, "documented operations vs ROUTES");

    for (method, path) in ROUTES {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        let statuses: Vec<u16> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|c| c.parse().unwrap())
            .collect();
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());

        let (status, body) = call(&stack, method, path, Some(KEY)).await;
        let fallback = (status == 404 && body["error"] == "route not found")
            || (status == 405 && body["code"] == "method_not_allowed");
        assert!(
            !fallback,
            "{method} {path} is documented but not served: {status} {body}"
        );
        assert!(
            statuses.contains(&status),
            "{method} {path} answered {status} {body}, which the document does not list ({statuses:?})"
        );
        if status >= 400 && !matches!(*path, "/readyz" | "/ready") {
            assert!(
                facecraft_contract::ErrorCode::from_code(error_code(path, &body)).is_some(),
                "{method} {path}: {status} without an error body: {body}"
            );
        }

        let (status, body) = call(&stack, method, path, None).await;
        if secured {
            assert_eq!(
                (status, error_code(path, &body)),
                (401, "unauthorized"),
                "{method} {path} declares an API key but answered without one"
            );
        } else {
            assert_ne!(status, 401, "{method} {path} declares no key but wants one");
            assert!(
                statuses.contains(&status),
                "{method} {path} without key: {status}"
            );
        }
    }
}

/// Checks a real JSON object against its schema: every property it carries is documented,
/// every required property is present.
fn conforms(doc: &Value, schema: &str, value: &Value) {
    let schema = &doc["components"]["schemas"][schema];
    let props = schema["properties"].as_object().unwrap();
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"));
    for key in object.keys() {
        assert!(
            props.contains_key(key),
            "`{key}` is not in the schema: {value}"
        );
    }
    for req in schema["required"].as_array().into_iter().flatten() {
        let req = req.as_str().unwrap();
        assert!(
            object.contains_key(req),
            "required `{req}` missing: {value}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_bodies_have_the_documented_shape() {
    let stack = keyed_stack().await;
    let doc = document(&stack).await;

    let resp = stack
        .http
        .post(stack.url("/v1/jobs"))
        .bearer_auth(KEY)
        .json(&json!({"input": {"key": "inbox/me.jpg"}, "params": {"width": 600}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let status: Value = resp.json().await.unwrap();
    conforms(&doc, "JobStatus", &status);
    conforms(&doc, "JobParams", &status["params"]);
    conforms(&doc, "ObjectRef", &status["input"]);
    conforms(&doc, "OutputSpec", &status["output"]);
    let states = doc["components"]["schemas"]["JobState"]["enum"]
        .as_array()
        .unwrap();
    assert!(states.contains(&status["state"]), "{status}");

    let resp = stack
        .http
        .post(stack.url("/v1/uploads"))
        .bearer_auth(KEY)
        .json(&json!({"filename": "me.jpg", "content_type": "image/jpeg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let upload: Value = resp.json().await.unwrap();
    let upload_schema = doc["paths"]["/v1/uploads"]["post"]["responses"]["200"]["content"]
        ["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    conforms(&doc, upload_schema, &upload);

    let (code, error) = stack
        .submit_json(json!({"input": {"key": "k"}, "params": {"width": 0}}))
        .await;
    assert_eq!(code, 401, "no key");
    conforms(&doc, "Error", &error);
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap();
    assert!(codes.contains(&error["code"]), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_is_self_contained_and_needs_no_key() {
    let stack = keyed_stack().await;
    let resp = stack.http.get(stack.url("/docs")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    for directive in [
        "script-src 'self';",
        "style-src 'self';",
        "connect-src 'self';",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe") && !csp.contains("http"), "{csp}");
    let html = resp.text().await.unwrap();
    // Everything it loads comes from this server.
    for (attr, _) in html
        .match_indices("src=")
        .chain(html.match_indices("href="))
    {
        let target = &html[attr..].split('"').nth(1).unwrap_or_default();
        assert!(target.starts_with('/'), "foreign asset {target} in {html}");
    }
    assert!(html.contains("/docs/docs.js") && html.contains("/docs/docs.css"));
    for (path, kind) in [("/docs/docs.js", "javascript"), ("/docs/docs.css", "css")] {
        let resp = stack.http.get(stack.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.contains(kind), "{path}: {ct}");
        let text = resp.text().await.unwrap();
        assert!(!text.contains("://"), "{path} names a foreign origin");
    }
}
