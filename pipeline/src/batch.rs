//! Cross-job batched inference (DESIGN §6, "Engines"): one inference thread per model collects
//! the inputs of concurrent jobs, up to `max` of them or until `wait` has passed since the first,
//! and runs them as one batch. A GPU does a batch of 8 in little more time than one image; a CPU
//! gains nothing, so the default is no batching (`FACECRAFT_BATCH_MAX=1`).
//!
//! Each job blocks on its own answer; a batch that fails as a whole is run again one input at a
//! time, so one bad input fails its own job only, and a panic in the model is caught the same way.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::face::EngineError;

/// How a model's inputs are gathered into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most inputs in one batch (≥ 1; 1 = each job alone, no inference thread).
    pub max: usize,
    /// Longest a first input waits for others to join it.
    pub wait: Duration,
}

impl BatchSettings {
    /// Whether inputs are batched at all.
    pub fn batches(&self) -> bool {
        self.max > 1
    }
}

/// Runs one batch: an answer per input, in order, or an error for the whole batch.
pub type RunBatch<I, O> = Box<dyn FnMut(&[I]) -> Result<Vec<O>, EngineError> + Send>;

struct Request<I, O> {
    input: I,
    reply: mpsc::SyncSender<Result<O, EngineError>>,
}

/// The sending end of one model's inference thread. The thread ends when this is dropped.
pub struct Batcher<I, O> {
    name: &'static str,
    tx: mpsc::SyncSender<Request<I, O>>,
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("name", &self.name).finish()
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the inference thread of model `name`, which runs `run` on each batch.
    pub fn spawn(
        name: &'static str,
        settings: BatchSettings,
        run: RunBatch<I, O>,
    ) -> Result<Self, EngineError> {
        let max = settings.max.max(1);
        // Room for a few batches: a job queues behind at most that many before it blocks.
        let (tx, rx) = mpsc::sync_channel::<Request<I, O>>(max * 4);
        std::thread::Builder::new()
            .name(format!("infer-{name}"))
            .spawn(move || serve(name, max, settings.wait, &rx, run))
            .map_err(|e| {
                EngineError::NotLoaded(format!("{name}: cannot start its inference thread: {e}"))
            })?;
        Ok(Self { name, tx })
    }

    /// Runs `input` in the next batch and waits for its answer.
    pub fn run(&self, input: I) -> Result<O, EngineError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let gone =
            || EngineError::Inference(format!("{}: the inference thread stopped", self.name));
        self.tx.send(Request { input, reply }).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

fn serve<I, O>(
    name: &'static str,
    max: usize,
    wait: Duration,
    rx: &mpsc::Receiver<Request<I, O>>,
    mut run: RunBatch<I, O>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + wait;
        while batch.len() < max {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(r) => batch.push(r),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let (inputs, replies): (Vec<I>, Vec<_>) =
            batch.into_iter().map(|r| (r.input, r.reply)).unzip();
        tracing::trace!(model = name, batch = inputs.len(), "batch");
        match attempt(name, &mut run, &inputs) {
            Ok(outputs) => {
                for (reply, out) in replies.into_iter().zip(outputs) {
                    // A job that stopped waiting (cancelled, panicked) just misses its answer.
                    let _ = reply.send(Ok(out));
                }
            }
            Err(e) if inputs.len() == 1 => {
                let _ = replies[0].send(Err(e));
            }
            Err(e) => {
                tracing::warn!(
                    model = name,
                    batch = inputs.len(),
                    error = %e,
                    "a batch failed: running its inputs one at a time"
                );
                for (input, reply) in inputs.iter().zip(replies) {
                    let one = attempt(name, &mut run, std::slice::from_ref(input))
                        .map(|mut v| v.remove(0));
                    let _ = reply.send(one);
                }
            }
        }
    }
}

/// One run, with a panic and a wrong number of answers turned into errors.
fn attempt<I, O>(
    name: &str,
    run: &mut RunBatch<I, O>,
    inputs: &[I],
) -> Result<Vec<O>, EngineError> {
    let outputs = panic::catch_unwind(AssertUnwindSafe(|| run(inputs)))
        .map_err(|_| EngineError::Inference(format!("{name}: inference panicked")))??;
    if outputs.len() != inputs.len() {
        return Err(EngineError::Inference(format!(
            "{name}: {} answers for a batch of {}",
            outputs.len(),
            inputs.len()
        )));
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier, Mutex};

    fn settings(max: usize, wait_ms: u64) -> BatchSettings {
        BatchSettings {
            max,
            wait: Duration::from_millis(wait_ms),
        }
    }

    /// Doubles each input; records the batch sizes; refuses 13 (a batch with it fails as a
    /// whole) and panics on 666.
    fn doubler(sizes: Arc<Mutex<Vec<usize>>>) -> RunBatch<i32, i32> {
        Box::new(move |inputs: &[i32]| {
            sizes.lock().unwrap().push(inputs.len());
            assert!(!inputs.contains(&666), "the model panics on 666");
            if inputs.contains(&13) {
                return Err(EngineError::Inference("13 is unlucky".into()));
            }
            Ok(inputs.iter().map(|i| i * 2).collect())
        })
    }

    fn concurrently(b: &Arc<Batcher<i32, i32>>, inputs: &[i32]) -> Vec<Result<i32, EngineError>> {
        let barrier = Arc::new(Barrier::new(inputs.len()));
        let handles: Vec<_> = inputs
            .iter()
            .map(|&i| {
                let (b, barrier) = (b.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    b.run(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn concurrent_jobs_share_batches_and_each_gets_its_own_answer() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        // A long wait: the batch closes when it is full, not on time.
        let b =
            Arc::new(Batcher::spawn("double", settings(4, 5_000), doubler(sizes.clone())).unwrap());
        let inputs: Vec<i32> = (1..=8).collect();
        let out = concurrently(&b, &inputs);
        for (i, o) in inputs.iter().zip(&out) {
            assert_eq!(*o.as_ref().unwrap(), i * 2);
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 8, "{sizes:?}");
        assert!(sizes.iter().all(|&s| s <= 4), "never above max: {sizes:?}");
        assert_eq!(sizes, vec![4, 4], "full batches");
    }

    #[test]
    fn a_lone_job_runs_after_the_wait() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let b = Batcher::spawn("double", settings(8, 20), doubler(sizes.clone())).unwrap();
        assert_eq!(b.run(21).unwrap(), 42);
        assert_eq!(*sizes.lock().unwrap(), vec![1]);
    }

    #[test]
    fn one_bad_input_fails_its_own_job_only() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::new(Batcher::spawn("double", settings(4, 5_000), doubler(sizes)).unwrap());
        let out = concurrently(&b, &[1, 13, 3, 666]);
        assert_eq!(*out[0].as_ref().unwrap(), 2);
        assert!(out[1].as_ref().unwrap_err().to_string().contains("unlucky"));
        assert_eq!(*out[2].as_ref().unwrap(), 6);
        assert!(out[3]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("panicked"));
        // The thread lives on after a panic.
        assert_eq!(b.run(5).unwrap(), 10);
    }

    #[test]
    fn a_wrong_number_of_answers_is_an_error() {
        let b = Batcher::spawn(
            "short",
            settings(1, 0),
            Box::new(|_: &[i32]| Ok(Vec::<i32>::new())),
        )
        .unwrap();
        assert!(b.run(1).unwrap_err().to_string().contains("0 answers"));
    }
}
