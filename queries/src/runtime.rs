//! The query runtime: SQL is parsed, planned and executed on threads of its own, apart from the
//! runtime that serves ingest, health checks and the broker.
//!
//! * A heavy query (a large join, a query stopped at its memory limit) then keeps only the query
//!   threads busy; the OS shares the cores with ingest and `/healthz`, which answer on their own
//!   threads.
//! * Its threads have a large stack ([`STACK_BYTES`]): DataFusion's planner and optimizer recurse
//!   over the expression tree, and a deep tree overflowed the 2 MiB of a default tokio worker, which
//!   aborts the whole process. The guard ([`crate::guard`]) limits the nesting
//!   (`serve.max_sql_depth`) and the text (`serve.max_sql_bytes`) so that this stack always suffices.
//! * [`QueryRuntime::pump`] runs a result stream on these threads into a small channel, with the
//!   deadline applied to producing *and* handing over each batch: a client that stops reading
//!   cannot keep its query (and its memory) past the time limit, and a reader that is dropped ends
//!   it at once, also while it computes.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::time::Instant;

use crate::limits::Limits;
use crate::{Error, Result};

/// A query's result, one batch at a time, within its limits.
pub type Batches =
    std::pin::Pin<Box<dyn futures::Stream<Item = crate::Result<arrow::array::RecordBatch>> + Send>>;

/// The error of a result whose producer stopped before its end.
fn broken() -> Error {
    Error::Query(
        "the query stopped before the end of its result (an internal error; see the server log); \
         what was sent is incomplete"
            .into(),
    )
}

/// Stack of each query thread. Only what a query touches is committed; the guard keeps deep
/// statements well inside it.
pub const STACK_BYTES: usize = 256 * 1024 * 1024;

/// Batches handed over ahead of the reader.
const AHEAD: usize = 2;

/// The runtime all queries run on.
pub struct QueryRuntime {
    rt: Option<tokio::runtime::Runtime>,
    running: prometheus::IntGauge,
}

/// Counts one running result while it lives.
struct Running(prometheus::IntGauge);

impl Running {
    fn start(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl std::fmt::Debug for QueryRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRuntime").finish_non_exhaustive()
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // dropped from async code at shutdown: do not wait for running queries
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl QueryRuntime {
    /// A runtime with one thread per core.
    pub fn new() -> Result<Arc<Self>> {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("fjord-query")
            .thread_stack_size(STACK_BYTES)
            .enable_all()
            .build()
            .map_err(|e| Error::Serve(format!("cannot start the query threads: {e}")))?;
        let running = prometheus::IntGauge::new(
            "queries_running",
            "query results being produced (a query ended by a limit or finished is not counted)",
        )
        .map_err(|e| Error::Serve(e.to_string()))?;
        Ok(Arc::new(Self {
            rt: Some(rt),
            running,
        }))
    }

    /// The gauge of results being produced (`fjord_queries_running` once registered).
    pub fn running(&self) -> &prometheus::IntGauge {
        &self.running
    }

    /// The runtime's handle.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        match &self.rt {
            Some(rt) => rt.handle(),
            None => unreachable!("the query runtime is only taken when dropped"),
        }
    }

    /// Runs `work` on the query threads and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.handle()
            .spawn(work)
            .await
            .map_err(|e| Error::Query(format!("the query failed: {e}")))?
    }

    /// `batches`, produced on the query threads: each batch must be produced and taken by the
    /// reader before `deadline`, else the stream ends with the time limit's error and the query is
    /// dropped (its memory freed) even while nobody reads.
    pub fn pump(&self, batches: Batches, limits: Limits, deadline: Instant) -> Batches {
        self.pump_items(
            batches,
            deadline,
            Result::is_err,
            move || Err(limits.time_error()),
            || Err(broken()),
        )
    }

    /// [`Self::pump`] for any stream: `failed` tells an item that ends it, `late` makes the item
    /// that ends it at the deadline, `cut` the item that ends a stream whose producer stopped
    /// without reaching its end (a panic in the query, the runtime shutting down) — so a reader
    /// never takes a cut result for a whole one.
    pub fn pump_items<T: Send + 'static>(
        &self,
        mut items: Pin<Box<dyn Stream<Item = T> + Send>>,
        deadline: Instant,
        failed: fn(&T) -> bool,
        late: impl Fn() -> T + Send + Sync + 'static,
        cut: fn() -> T,
    ) -> Pin<Box<dyn Stream<Item = T> + Send>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<T>(AHEAD);
        let late = Arc::new(late);
        // set when the query was ended for a reader that stopped taking items (the channel is
        // full then, so the error waits here and comes after the items already handed over)
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // set when the producer reached the end of its items or sent the item that ends them
        let complete = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ended_by_pump, late_by_pump) = (ended.clone(), late.clone());
        let complete_by_pump = complete.clone();
        let running = Running::start(&self.running);
        self.handle().spawn(async move {
            let _running = running;
            loop {
                // a reader that went away (a client that disconnected) ends the query at once,
                // also while it computes its next batch
                let next = tokio::select! {
                    _ = tx.closed() => return,
                    n = tokio::time::timeout_at(deadline, items.next()) => match n {
                        Err(_) => Some(late_by_pump()),
                        Ok(n) => n,
                    },
                };
                let Some(item) = next else {
                    complete_by_pump.store(true, std::sync::atomic::Ordering::Release);
                    return;
                };
                let stop = failed(&item);
                if stop {
                    complete_by_pump.store(true, std::sync::atomic::Ordering::Release);
                }
                match tokio::time::timeout_at(deadline, tx.send(item)).await {
                    Ok(Ok(())) if !stop => {}
                    Ok(_) => return, // failed, or the reader went away
                    Err(_) => {
                        drop(items);
                        ended_by_pump.store(true, std::sync::atomic::Ordering::Release);
                        return;
                    }
                }
            }
        });
        Box::pin(futures::stream::unfold(
            (rx, ended, complete, false),
            move |(mut rx, ended, complete, done)| {
                let late = late.clone();
                async move {
                    if done {
                        return None;
                    }
                    match rx.recv().await {
                        Some(b) => Some((b, (rx, ended, complete, false))),
                        None if ended.load(std::sync::atomic::Ordering::Acquire) => {
                            Some((late(), (rx, ended, complete, true)))
                        }
                        None if !complete.load(std::sync::atomic::Ordering::Acquire) => {
                            Some((cut(), (rx, ended, complete, true)))
                        }
                        None => None,
                    }
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::RecordBatch;

    fn limits() -> Limits {
        Limits {
            timeout: std::time::Duration::from_millis(300),
            memory_bytes: 1 << 30,
            spill_bytes: 0,
            max_rows: 1 << 40,
            max_result_bytes: 1 << 40,
            sql: crate::guard::Shape {
                max_bytes: 1 << 20,
                max_depth: 1024,
            },
        }
    }

    fn endless() -> Batches {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("v", arrow::datatypes::DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(arrow::array::Int64Array::from(vec![1_i64; 1024]))],
        )
        .unwrap();
        Box::pin(futures::stream::repeat_with(move || Ok(batch.clone())))
    }

    /// Set when the value is dropped: a query's source, to see when the pump lets go of it.
    struct Flag(Arc<std::sync::atomic::AtomicBool>);

    impl Flag {
        fn new() -> (Self, Arc<std::sync::atomic::AtomicBool>) {
            let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
            (Self(dropped.clone()), dropped)
        }
    }

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_reader_that_stops_reading_does_not_keep_the_query_past_its_deadline() {
        let rt = QueryRuntime::new().unwrap();
        let (flag, dropped) = Flag::new();
        let source: Batches = Box::pin(endless().map(move |b| {
            let _keep = &flag;
            b
        }));
        let deadline = Instant::now() + limits().timeout;
        let mut out = rt.pump(source, limits(), deadline);
        // read one batch, then stop reading
        assert!(out.next().await.unwrap().is_ok());
        let waited = Instant::now();
        while !dropped.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(
                waited.elapsed() < std::time::Duration::from_secs(10),
                "the query still runs long after its deadline"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            Instant::now() >= deadline,
            "ended at the deadline, not before"
        );
        // what the reader finds when it comes back: the batches handed over, then the limit
        let mut last = None;
        while let Some(b) = out.next().await {
            last = Some(b);
        }
        let e = last.unwrap().unwrap_err().to_string();
        assert!(e.contains("time limit"), "{e}");
        drop(rt);
    }

    #[tokio::test]
    async fn a_reader_that_goes_away_ends_the_query_while_it_computes() {
        let rt = QueryRuntime::new().unwrap();
        let (flag, dropped) = Flag::new();
        // a query that computes for an hour before its first batch
        let source: Batches = Box::pin(futures::stream::once(async move {
            let _keep = flag;
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Err(crate::Error::Query("unreachable".into()))
        }));
        let deadline = Instant::now() + std::time::Duration::from_secs(3600);
        let out = rt.pump(source, limits(), deadline);
        assert_eq!(rt.running().get(), 1);
        drop(out);
        let waited = Instant::now();
        while !dropped.load(std::sync::atomic::Ordering::SeqCst) || rt.running().get() != 0 {
            assert!(
                waited.elapsed() < std::time::Duration::from_secs(10),
                "the query still runs after its reader went away"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        drop(rt);
    }

    #[tokio::test]
    async fn a_query_that_panics_ends_with_an_error_not_a_short_result() {
        let rt = QueryRuntime::new().unwrap();
        let first = endless();
        let source: Batches = Box::pin(first.take(1).chain(futures::stream::once(async {
            panic!("a bug in an operator");
        })));
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let mut out = rt.pump(source, limits(), deadline);
        assert!(out.next().await.unwrap().is_ok());
        let e = out.next().await.unwrap().unwrap_err().to_string();
        assert!(e.contains("incomplete"), "{e}");
        assert!(out.next().await.is_none());
        drop(rt);
    }

    #[tokio::test]
    async fn a_deep_recursion_runs_on_the_large_stack() {
        fn depth(n: u32) -> u32 {
            let pad = std::hint::black_box([0u8; 1024]);
            if n == 0 {
                u32::from(pad[0])
            } else {
                depth(n - 1) + u32::from(pad[1])
            }
        }
        // ~20 MiB of stack: far more than a default 2 MiB thread has
        let rt = QueryRuntime::new().unwrap();
        let v = rt.run(async { Ok(depth(20_000)) }).await.unwrap();
        assert_eq!(v, 0);
        drop(rt);
    }
}
