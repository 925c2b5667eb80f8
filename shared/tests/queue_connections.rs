//! The queue's shared Redis connections against the real redis-server of `scripts/dev-stack`:
//! concurrent commands share them, and one that Redis closes is replaced, not kept broken.
//!
//! One test, because it closes every other client of the server and would break a neighbour.

#![allow(clippy::unwrap_used)]

use facecraft_contract::error::ErrorCode;
use facecraft_shared::config::{QueueSettings, RedisSettings};
use facecraft_shared::queue::Queue;

fn url() -> String {
    std::env::var("FACECRAFT_REDIS_URL")
        .expect("FACECRAFT_REDIS_URL (run under scripts/dev-stack run)")
}

async fn clients(admin: &mut redis::aio::MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("normal")
        .query_async(admin)
        .await
        .unwrap();
    list.lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_share_two_connections_and_a_closed_one_is_replaced() {
    let settings = RedisSettings {
        url: url(),
        prefix: format!("conntest-{}", uuid::Uuid::now_v7().simple()),
        pool_size: 2,
        timeout_ms: 2000,
        ..Default::default()
    };
    settings.validate().unwrap();
    let queue = Queue::new(&settings, &QueueSettings::default()).unwrap();
    let mut admin = redis::Client::open(url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    // 200 commands at once open no more than the two connections configured.
    let before = clients(&mut admin).await;
    let pings: Vec<_> = (0..200)
        .map(|_| {
            let q = queue.clone();
            tokio::spawn(async move { q.ping().await })
        })
        .collect();
    for p in pings {
        p.await.unwrap().unwrap();
    }
    let opened = clients(&mut admin).await - before;
    assert!(
        (1..=2).contains(&opened),
        "{opened} connections for 2 configured"
    );

    // Redis closes every other client, as a restart or a proxy would. A command may fail once
    // per connection that was open; after that the queue works again on new connections.
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= opened as i64, "killed {killed}");
    let mut failures = 0;
    for _ in 0..2 * opened + 1 {
        match queue.ping().await {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::QueueUnavailable, "{e}");
                failures += 1;
            }
        }
    }
    assert!(failures <= opened, "{failures} failures after the kill");
    for _ in 0..10 {
        queue.ping().await.unwrap();
    }

    // The replacements are as many as before, not one more per failure.
    assert!(
        clients(&mut admin).await <= 1 + 2,
        "the admin connection and two at most"
    );
}
