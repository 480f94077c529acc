//! `occupancy_forecast` (docs/contract.md §4.4, §7): each lot's next 24 hours, computed at scan
//! time from its profile in the lake (`forecast_profile`, reloaded when a newer version is
//! committed, at most every `forecast.refresh`) and its live occupancy from the speed layer. Two
//! replicas reading the same lake and Kafka give the same forecast.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use fjord_core::forecast::predict::{Observed, predict};
use fjord_core::forecast::{HORIZON_STEPS, Profiles, SharedProfiles};
use fjord_core::time::{TimestampMs, now_ms};
use fjord_lake::Lake;

use crate::speed::Speed;
use crate::tables::lots_named;

/// How long a look at the lake for new profiles may take.
const LAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// `f` within [`LAKE_TIMEOUT`], its error as text.
async fn within<T>(
    f: impl std::future::Future<Output = fjord_lake::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(LAKE_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "the lake did not answer within {} s",
            LAKE_TIMEOUT.as_secs()
        )),
    }
}

/// The profiles as the serving layer holds them.
pub struct ForecastSource {
    lake: Lake,
    profiles: SharedProfiles,
    refresh: Duration,
    /// When the lake was last looked at, and the table version then.
    checked: tokio::sync::Mutex<(Option<Instant>, Option<u64>)>,
}

impl std::fmt::Debug for ForecastSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForecastSource").finish_non_exhaustive()
    }
}

impl ForecastSource {
    /// Profiles of `lake`, looked for at most every `refresh` (every 2 s while there are none).
    pub fn new(lake: Lake, refresh: Duration) -> Arc<Self> {
        Arc::new(Self {
            lake,
            profiles: SharedProfiles::default(),
            refresh,
            checked: tokio::sync::Mutex::new((None, None)),
        })
    }

    /// The current profiles (empty before the first training); a lake that cannot be read keeps
    /// the last ones and is logged.
    pub async fn profiles(&self) -> Arc<Profiles> {
        // one refresh at a time; meanwhile (or while the lake is slow) queries use the last ones
        let Ok(mut checked) = self.checked.try_lock() else {
            return self.profiles.get();
        };
        // before the first profile, look more often: it appears soon after a fresh start
        let every = if checked.1.is_none() {
            self.refresh.min(Duration::from_secs(2))
        } else {
            self.refresh
        };
        if checked.0.is_some_and(|t| t.elapsed() < every) {
            return self.profiles.get();
        }
        checked.0 = Some(Instant::now());
        match within(fjord_lake::forecast::load_if_changed(&self.lake, checked.1)).await {
            Ok(Some((version, p))) => {
                tracing::info!(model = %p.model_version, lots = p.lots.len(), "forecast profiles loaded");
                self.profiles.set(p);
                checked.1 = Some(version);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the forecast profiles; keeping the last");
            }
        }
        self.profiles.get()
    }
}

/// The forecast rows of the lots in `lots` (all without) issued at `now`.
pub fn forecast_batch(
    profiles: &Profiles,
    speed: &Speed,
    lots: Option<&BTreeSet<String>>,
    now: TimestampMs,
) -> RecordBatch {
    let wanted = lots.map_or(profiles.lots.len(), |l| {
        l.iter()
            .filter(|id| profiles.lots.contains_key(*id))
            .count()
    });
    let n = wanted * HORIZON_STEPS;
    let mut lot = StringBuilder::with_capacity(n, n * 8);
    let mut target = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut horizon = Int32Builder::with_capacity(n);
    let mut ratio = Float64Builder::with_capacity(n);
    let mut occupied = Float64Builder::with_capacity(n);
    let mut lower = Float64Builder::with_capacity(n);
    let mut upper = Float64Builder::with_capacity(n);
    let mut version = StringBuilder::with_capacity(n, n * 28);
    let mut issued = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let live = speed.read(|s| s.live_rows());
    for (id, p) in &profiles.lots {
        if lots.is_some_and(|l| !l.contains(id)) {
            continue;
        }
        let row = live.get(id);
        let observed = row.map(|r| Observed {
            at: r.updated_at,
            ratio: r.occupancy_ratio,
        });
        let as_of = now.max(row.map_or(now, |r| r.updated_at));
        let capacity = row.map_or(p.capacity, |r| r.capacity);
        for s in predict(p, as_of, observed, HORIZON_STEPS) {
            lot.append_value(id);
            target.append_value(s.target_time.saturating_mul(1000));
            horizon.append_value(i32::try_from(s.horizon_ms / 60_000).unwrap_or(i32::MAX));
            ratio.append_value(s.ratio);
            occupied.append_value(s.ratio * f64::from(capacity));
            lower.append_value(s.lower);
            upper.append_value(s.upper);
            version.append_value(&profiles.model_version);
            issued.append_value(as_of.saturating_mul(1000));
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(lot.finish()),
        Arc::new(target.finish()),
        Arc::new(horizon.finish()),
        Arc::new(ratio.finish()),
        Arc::new(occupied.finish()),
        Arc::new(lower.finish()),
        Arc::new(upper.finish()),
        Arc::new(version.finish()),
        Arc::new(issued.finish()),
    ];
    RecordBatch::try_new(fjord_core::schema::occupancy_forecast(), columns)
        .unwrap_or_else(|e| unreachable!("the builders follow the schema: {e}"))
}

/// `occupancy_forecast` as SQL sees it.
#[derive(Debug)]
pub struct ForecastTable {
    source: Arc<ForecastSource>,
    speed: Arc<Speed>,
}

impl ForecastTable {
    /// The forecast of `source`'s profiles and `speed`'s live occupancy.
    pub fn new(source: Arc<ForecastSource>, speed: Arc<Speed>) -> Self {
        Self { source, speed }
    }
}

#[async_trait]
impl TableProvider for ForecastTable {
    fn schema(&self) -> SchemaRef {
        fjord_core::schema::occupancy_forecast()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let lots = lots_named(filters);
        let profiles = self.source.profiles().await;
        let batch = forecast_batch(&profiles, &self.speed, lots.as_ref(), now_ms());
        MemTable::try_new(self.schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}
