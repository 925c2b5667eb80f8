//! The object store against the real S3 server of `scripts/dev-stack`: presigned URLs for a
//! public endpoint other than the one the services use.

#![allow(clippy::unwrap_used)]

use clap::Parser;
use facecraft_contract::job::ObjectRef;
use facecraft_shared::config::S3Settings;
use facecraft_shared::store::ObjectStore;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    s3: S3Settings,
}

fn endpoint() -> String {
    std::env::var("FACECRAFT_S3_ENDPOINT")
        .expect("FACECRAFT_S3_ENDPOINT (run under scripts/dev-stack run)")
}

async fn store(extra: &[&str]) -> (ObjectStore, String) {
    let bucket = format!("s{}", &uuid::Uuid::now_v7().simple().to_string()[16..]);
    let ep = endpoint();
    let mut args = vec!["t", "--s3-endpoint", &ep, "--s3-bucket", &bucket];
    args.extend_from_slice(extra);
    let settings = Cli::try_parse_from(args).unwrap().s3;
    settings.validate().unwrap();
    let store = ObjectStore::new(&settings).await.unwrap();
    store.ensure_bucket(&bucket).await.unwrap();
    (store, bucket)
}

#[tokio::test]
async fn presigned_urls_name_the_public_endpoint_and_work_there() {
    // The services reach S3 as 127.0.0.1:PORT; clients are told localhost:PORT, another Host
    // for the same server, as a compose network name and a published port would be.
    let internal = endpoint();
    assert!(internal.contains("127.0.0.1"), "{internal}");
    let public = internal.replace("127.0.0.1", "localhost");
    let (store, bucket) = store(&["--s3-public-endpoint", &public]).await;
    let obj = ObjectRef {
        bucket,
        key: "in/a.txt".into(),
    };
    store
        .put(&obj, bytes::Bytes::from_static(b"hello"), "text/plain")
        .await
        .unwrap();

    let get = store.presign_get(&obj).await.unwrap();
    assert!(get.starts_with(&format!("{public}/")), "{get}");
    let http = reqwest::Client::new();
    let resp = http.get(&get).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"hello");

    let put_obj = ObjectRef {
        key: "in/b.txt".into(),
        ..obj.clone()
    };
    let put = store
        .presign_put(&put_obj, Some("text/plain"))
        .await
        .unwrap();
    assert!(put.starts_with(&format!("{public}/")), "{put}");
    let resp = http
        .put(&put)
        .header("content-type", "text/plain")
        .body("uploaded")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let back = store.get(&put_obj, 1024).await.unwrap();
    assert_eq!(back.as_ref(), b"uploaded");

    // A URL signed for one host is refused when presented to the server under another:
    // the public endpoint has to be the address clients really use.
    let wrong_host = get.replace("localhost", "127.0.0.1");
    let resp = http.get(&wrong_host).send().await.unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn without_a_public_endpoint_urls_name_the_service_endpoint() {
    let (store, bucket) = store(&[]).await;
    let obj = ObjectRef {
        bucket,
        key: "x.txt".into(),
    };
    store
        .put(&obj, bytes::Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap();
    let get = store.presign_get(&obj).await.unwrap();
    assert!(get.starts_with(&format!("{}/", endpoint())), "{get}");
    let resp = reqwest::get(&get).await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn a_public_endpoint_must_be_an_http_url() {
    let settings = Cli::try_parse_from([
        "t",
        "--s3-endpoint",
        "http://127.0.0.1:1",
        "--s3-public-endpoint",
        "s3.example:8333",
    ])
    .unwrap()
    .s3;
    let e = settings.validate().unwrap_err();
    assert!(e.contains("FACECRAFT_S3_PUBLIC_ENDPOINT"), "{e}");
}
