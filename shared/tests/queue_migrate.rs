//! `facecraft-worker migrate-keys` (`Queue::migrate_legacy_keys`) on a real redis-server: the
//! untagged layout of earlier versions moves to the hash-tagged one with its waiting and pending
//! entries, consumer group and expiries; nothing else is touched.
#![allow(clippy::unwrap_used)]

use facecraft_contract::job::JobId;
use facecraft_shared::config::{QueueSettings, RedisSettings};
use facecraft_shared::queue::Queue;
use redis::AsyncCommands;

fn url() -> String {
    std::env::var("FACECRAFT_REDIS_URL")
        .expect("FACECRAFT_REDIS_URL (run under scripts/dev-stack run)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_layout_moves_with_its_pending_entries_and_expiries() {
    let p = format!("mig-{}", uuid::Uuid::now_v7().simple());
    let settings = RedisSettings {
        url: url(),
        prefix: p.clone(),
        ..RedisSettings::default()
    };
    let queue = Queue::new(&settings, &QueueSettings::default()).unwrap();
    let mut r = redis::Client::open(url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    // The old layout: two waiting entries, one of them delivered and pending.
    let (waiting, running, conflict) = (JobId::new(), JobId::new(), JobId::new());
    let old_stream = format!("{p}:jobs");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&old_stream)
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut r)
        .await
        .unwrap();
    for id in [&running, &waiting] {
        let _: String = r
            .xadd(&old_stream, "*", &[("id", id.to_string())])
            .await
            .unwrap();
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("w1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&old_stream)
        .arg(">")
        .query_async(&mut r)
        .await
        .unwrap();
    for (id, state) in [
        (&waiting, "queued"),
        (&running, "running"),
        (&conflict, "succeeded"),
    ] {
        let _: () = r
            .hset_multiple(
                format!("{p}:job:{id}"),
                &[("state", state), ("tenant", "t")],
            )
            .await
            .unwrap();
    }
    let _: () = r.expire(format!("{p}:job:{running}"), 3600).await.unwrap();
    let _: () = r
        .set_ex(format!("{p}:idem:t:k1"), waiting.to_string(), 600)
        .await
        .unwrap();
    let _: () = r.zadd(format!("{p}:delayed"), "x", 1).await.unwrap();
    let _: () = r
        .hset(format!("{p}:stats:finished"), "succeeded", 7)
        .await
        .unwrap();
    // Not ours: another family under the prefix, and another prefix that starts alike.
    let _: () = r.set(format!("{p}:other"), "keep").await.unwrap();
    let _: () = r.set(format!("{p}x:jobs"), "keep").await.unwrap();
    // A new worker already ran: an empty tagged stream with its group, and a tagged record
    // that collides with an old one.
    queue.ensure_group().await.unwrap();
    let keys = queue.keys();
    let _: () = r
        .hset(keys.job(&conflict), "state", "queued")
        .await
        .unwrap();

    assert!(queue.has_legacy_keys().await.unwrap());
    let done = queue.migrate_legacy_keys().await.unwrap();
    assert_eq!(done.renamed, 6, "{done:?}");
    assert_eq!(done.kept.len(), 1, "{done:?}");
    assert_eq!(done.kept[0].0, format!("{p}:job:{conflict}"));
    assert!(!queue.has_legacy_keys().await.unwrap());

    // Waiting and pending entries carried over, with the group.
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.stream_len, stats.pending, stats.delayed), (2, 1, 1));
    let pending: redis::streams::StreamPendingReply =
        r.xpending(keys.stream(), "workers").await.unwrap();
    assert_eq!(pending.count(), 1);
    let state: String = r.hget(keys.job(&waiting), "state").await.unwrap();
    assert_eq!(state, "queued");
    let ttl: i64 = r.ttl(keys.job(&running)).await.unwrap();
    assert!((3000..=3600).contains(&ttl), "{ttl}");
    let idem: String = r.get(keys.idem("t", "k1")).await.unwrap();
    assert_eq!(idem, waiting.to_string());
    assert_eq!(queue.finished_stats().await.unwrap().succeeded, 7);
    // The conflicting tagged record kept its value; the untouched keys are still there.
    let state: String = r.hget(keys.job(&conflict), "state").await.unwrap();
    assert_eq!(state, "queued");
    for k in [
        format!("{p}:other"),
        format!("{p}x:jobs"),
        format!("{p}:job:{conflict}"),
    ] {
        assert!(r.exists::<_, bool>(&k).await.unwrap(), "{k} was touched");
    }

    // Cleanup.
    let mut all: Vec<String> = r.keys(format!("{p}*")).await.unwrap();
    all.extend(r.keys::<_, Vec<String>>(format!("{{{p}}}*")).await.unwrap());
    let _: i64 = r.del(all).await.unwrap();
}
