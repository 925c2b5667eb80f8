//! What every job task of a `serve` worker shares: the queue, the store, the settings, the
//! loaded engines and the metrics, and the set of entries in flight. Its own module so that
//! the consumer loop (`serve`) and the job runner (`job`) both depend on it and not on each
//! other.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use facecraft_pipeline::engines::Engines;
use facecraft_shared::queue::Queue;
use facecraft_shared::store::ObjectStore;

use crate::config::ServeSettings;
use crate::metrics::Metrics;

/// Everything a job task needs.
pub(crate) struct Ctx {
    pub queue: Queue,
    pub store: ObjectStore,
    pub settings: ServeSettings,
    pub engines: Arc<Engines>,
    pub name: String,
    pub metrics: Arc<Metrics>,
    in_flight: Mutex<HashSet<String>>,
}

impl Ctx {
    pub fn new(
        queue: Queue,
        store: ObjectStore,
        settings: ServeSettings,
        engines: Arc<Engines>,
        name: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            queue,
            store,
            settings,
            engines,
            name,
            metrics,
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// Stream entries of the jobs running now (their leases are renewed).
    pub fn in_flight(&self) -> Vec<String> {
        self.in_flight
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
    /// Marks an entry as running (`on`) or done.
    pub fn track(&self, entry: &str, on: bool) {
        if let Ok(mut s) = self.in_flight.lock() {
            if on {
                s.insert(entry.to_owned());
            } else {
                s.remove(entry);
            }
        }
    }
}
