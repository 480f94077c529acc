//! What the stream benchmarks share: a processor running on its own thread, and its record count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fjord_core::config::Config;
use fjord_core::telemetry::Metrics;
use fjord_stream::metrics::StreamMetrics;
use fjord_stream::runtime::Summary;

/// A stream processor running until [`Running::stop`].
pub struct Running {
    /// Its metrics.
    pub metrics: StreamMetrics,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<fjord_stream::Result<Summary>>,
}

impl Running {
    /// Starts `fjord stream` with `config` (a 6 s session timeout: the mock cluster lets a closed
    /// member go only after it).
    pub fn start(config: &Config) -> Self {
        let metrics = StreamMetrics::new(&Metrics::new()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (config, metrics, stop) = (config.clone(), metrics.clone(), stop.clone());
            std::thread::spawn(move || {
                fjord_stream::runtime::run(
                    &config,
                    metrics,
                    stop,
                    fjord_stream::runtime::RunOptions {
                        session_timeout: Some(Duration::from_secs(6)),
                        ..Default::default()
                    },
                )
            })
        };
        Self {
            metrics,
            stop,
            handle,
        }
    }

    /// Records processed so far, whatever their fate.
    pub fn records(&self) -> u64 {
        ["accepted", "duplicate", "late", "dead", "skipped"]
            .iter()
            .map(|f| self.metrics.records.with_label_values(&[f]).get())
            .sum()
    }

    /// Stops the processor and returns its summary.
    pub fn stop(self) -> Summary {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap().unwrap()
    }
}
