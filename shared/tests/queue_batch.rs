//! Starts and finishes made at once go to Redis in shared script calls (group commit, issue 11);
//! against the real redis-server of `scripts/dev-stack`, each caller must still get its own
//! answer, and one job's odd record must fail that job alone.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use facecraft_contract::error::{ErrorCode, JobError};
use facecraft_contract::job::{
    now_ms, Job, JobId, JobParams, JobResult, JobState, ObjectRef, OutputSpec,
};
use facecraft_shared::config::{QueueSettings, RedisSettings};
use facecraft_shared::queue::{CancelOutcome, Queue, QueueError, Start};
use redis::AsyncCommands;

fn url() -> String {
    std::env::var("FACECRAFT_REDIS_URL")
        .expect("FACECRAFT_REDIS_URL (run under scripts/dev-stack run)")
}

fn job() -> Job {
    Job {
        id: JobId::new(),
        tenant: "batch-test".to_owned(),
        input: ObjectRef {
            bucket: "facecraft".to_owned(),
            key: "in/photo.jpg".to_owned(),
        },
        params: JobParams::default(),
        output: OutputSpec {
            bucket: "facecraft".to_owned(),
            prefix: "results/".to_owned(),
        },
        idempotency_key: None,
        created_at_ms: now_ms(),
    }
}

const JOBS: usize = 150;

/// `EVALSHA` calls the server has run (INFO commandstats); no other test binary runs meanwhile.
async fn script_calls(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_and_finishes_each_get_their_own_answer() {
    let settings = RedisSettings {
        url: url(),
        prefix: format!("batchtest-{}", uuid::Uuid::now_v7().simple()),
        ..Default::default()
    };
    let queue = Queue::new(&settings, &QueueSettings::default()).unwrap();
    let mut admin = redis::Client::open(url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    queue.ensure_group().await.unwrap();

    let jobs: Vec<Job> = (0..JOBS).map(|_| job()).collect();
    for j in &jobs {
        queue.enqueue(j).await.unwrap();
    }
    // Three odd ones among them: a record without its job, a record gone, a job cancelled
    // while it waited.
    let (corrupt, gone, cancelled) = (jobs[10].id, jobs[75].id, jobs[140].id);
    let _: i64 = admin.hdel(queue.keys().job(&corrupt), "job").await.unwrap();
    let _: i64 = admin.del(queue.keys().job(&gone)).await.unwrap();
    assert_eq!(
        queue.cancel(&cancelled, "batch-test").await.unwrap(),
        CancelOutcome::Cancelled
    );

    let mut consumer = queue.consumer("w1").await.unwrap();
    let mut deliveries = Vec::new();
    while deliveries.len() < JOBS {
        let got = consumer
            .read(JOBS, Duration::from_millis(200))
            .await
            .unwrap();
        assert!(!got.is_empty(), "read {} of {JOBS}", deliveries.len());
        deliveries.extend(got);
    }

    // Every start at once, under two worker names: far more than one script call's worth.
    let calls_before = script_calls(&mut admin).await;
    let starts: Vec<_> = deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (q, d) = (queue.clone(), d.clone());
            let worker = if i % 2 == 0 { "w1" } else { "w2" };
            tokio::spawn(async move {
                let id = d.job_id.unwrap();
                (d.clone(), id, q.start(&d, &id, worker).await)
            })
        })
        .collect();
    let mut running = Vec::new();
    for s in starts {
        let (d, id, start) = s.await.unwrap();
        match start {
            Ok(Start::Run { job, attempts, .. }) => {
                assert_eq!(job.id, id, "a start answered with another job");
                assert_eq!(attempts, 1);
                running.push((d, id));
            }
            Err(QueueError::Corrupt { id: bad, .. }) => assert_eq!(bad, corrupt.to_string()),
            Ok(Start::Skip(reason)) if id == gone => assert_eq!(reason, ""),
            Ok(Start::Skip(reason)) if id == cancelled => assert_eq!(reason, "cancelled"),
            other => panic!("job {id}: unexpected start {other:?}"),
        }
    }
    assert_eq!(running.len(), JOBS - 3);
    // Together, or the grouping is gone: calls made while others are out wait for the next.
    let calls = script_calls(&mut admin).await - calls_before;
    assert!(
        calls < JOBS as u64 / 2,
        "{calls} script calls for {JOBS} starts"
    );
    for (i, (_, id)) in running.iter().enumerate().take(4) {
        let status = queue.status(id, None).await.unwrap().unwrap();
        assert_eq!(status.state, JobState::Running, "job {i}");
    }
    let worker: String = admin
        .hget(queue.keys().job(&running[1].1), "worker")
        .await
        .unwrap();
    assert!(worker == "w1" || worker == "w2");

    // Every finish at once: two thirds succeed, a third fail; each result lands on its own job.
    let finishes: Vec<_> = running
        .iter()
        .enumerate()
        .map(|(i, (d, id))| {
            let (q, d, id) = (queue.clone(), d.clone(), *id);
            tokio::spawn(async move {
                let ok = if i % 3 == 2 {
                    let err = JobError::new(ErrorCode::NoFaceDetected, format!("no face in {id}"));
                    q.fail(&d, &id, &err).await
                } else {
                    let result = JobResult {
                        outputs: Vec::new(),
                        face: None,
                        timings_ms: [(id.to_string(), 1)].into_iter().collect(),
                        quality: None,
                    };
                    q.succeed(&d, &id, &result).await
                };
                (id, i % 3 == 2, ok.unwrap())
            })
        })
        .collect();
    let mut failed = 0;
    for f in finishes {
        let (id, fails, first) = f.await.unwrap();
        assert!(first, "job {id} had already ended");
        let status = queue.status(&id, None).await.unwrap().unwrap();
        if fails {
            failed += 1;
            assert_eq!(status.state, JobState::Failed);
            assert_eq!(status.error.unwrap().message, format!("no face in {id}"));
        } else {
            assert_eq!(status.state, JobState::Succeeded);
            let timings = status.result.unwrap().timings_ms;
            assert_eq!(
                timings.keys().collect::<HashSet<_>>(),
                HashSet::from([&id.to_string()])
            );
        }
    }

    // A second finish of an ended job is a harmless duplicate.
    let (d, id) = &running[0];
    let err = JobError::new(ErrorCode::Internal, "late");
    assert!(!queue.fail(d, id, &err).await.unwrap());

    // Every entry acked and deleted but the corrupt one, which waits for the reaper; the
    // counters count each job once.
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.stream_len, stats.pending), (1, 1), "{stats:?}");
    let finished = queue.finished_stats().await.unwrap();
    assert_eq!(finished.failed, failed);
    assert_eq!(finished.succeeded, (JOBS - 3) as u64 - failed);

    let keys: Vec<String> = admin
        .keys(format!("{{{}}}*", settings.prefix))
        .await
        .unwrap();
    let _: i64 = admin.del(keys).await.unwrap();
}
