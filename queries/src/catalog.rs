//! The SQL catalog of docs/contract.md §7 in one long-lived DataFusion session: the lake's Delta tables
//! (`readings`, `alerts`, `quarantine`), the merged `occupancy_<size>` of every configured window
//! size (`occupancy_1m` / `occupancy_10m` by default, §4.3), the
//! live tables of the speed layer (`occupancy_live`, `spaces_live`), `lots` from the registry and
//! `occupancy_forecast` (§4.4; [`crate::forecast`]) when the forecast is on.
//! Every scan looks at the current lake version and speed-layer state (see [`crate::tables`]), so new
//! commits are visible to new queries without a restart.
//!
//! The session carries the memory limit (a DataFusion memory pool shared by all running queries),
//! the spill limit (the disk their sorts, aggregations and joins may spill to when that pool is
//! used up, in a temporary directory of the process) and capped versions of the functions that
//! build values of any size ([`crate::capped`]); [`crate::exec`] adds the time, row and byte limits
//! per query, run on the catalog's query threads ([`crate::runtime`]).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int32Builder, RecordBatch, StringBuilder};
use datafusion::datasource::MemTable;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryPool, TrackConsumersPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use fjord_core::config::Config;
use fjord_core::lots::LotsRegistry;
use fjord_lake::{Lake, Table};

use crate::forecast::{ForecastSource, ForecastTable};
use crate::runtime::QueryRuntime;
use crate::speed::Speed;
use crate::tables::{LakeTable, LakeTables, Live, LiveTable, MergedOccupancy};
use crate::{Error, Result};

/// How many of the largest memory consumers an exhaustion error lists.
const TOP_CONSUMERS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(5).unwrap();

/// The catalog: a session with every table registered, and the limits of §7.
#[derive(Clone)]
pub struct Catalog {
    ctx: SessionContext,
    forecast: Option<Arc<ForecastSource>>,
    limits: crate::limits::Limits,
    runtime: Arc<QueryRuntime>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// The catalog of `cfg`'s lake and registry, with `speed` as the speed layer (an empty one
    /// for `fjord sql`).
    pub fn open(cfg: &Config, speed: Arc<Speed>) -> Result<Self> {
        let limits = crate::limits::Limits::from_config(&cfg.serve);
        // With spilling, DataFusion's fair pool: each operator that can spill gets an equal share
        // of what the others do not hold, so one partition's sort cannot take the memory that
        // another's needs to merge its runs before spilling them. (With the greedy pool, the
        // first sort to grow took it all and the other's merge failed: average_stay over 100 M
        // readings ended at 2 GiB after 3 s; with the fair pool it finishes in under 1 GiB.)
        let (pool, disk): (Arc<dyn MemoryPool>, _) = if limits.spill_bytes == 0 {
            (
                Arc::new(TrackConsumersPool::new(
                    GreedyMemoryPool::new(limits.memory_bytes),
                    TOP_CONSUMERS,
                )),
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
        } else {
            (
                Arc::new(TrackConsumersPool::new(
                    FairSpillPool::new(limits.memory_bytes),
                    TOP_CONSUMERS,
                )),
                DiskManagerBuilder::default()
                    .with_mode(DiskManagerMode::OsTmpDirectory)
                    .with_max_temp_directory_size(limits.spill_bytes),
            )
        };
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            .with_disk_manager_builder(disk)
            .build_arc()?;
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("fjord", "public");
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        // pg_catalog and the Postgres functions that psql, Grafana and DBeaver query
        datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog(
            &ctx,
            "fjord",
            datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
        )
        .map_err(|e| Error::Query(format!("cannot set up pg_catalog: {e}")))?;
        crate::capped::register(
            &ctx,
            cfg.serve
                .max_function_output_mb
                .min(cfg.serve.query_memory_mb)
                .saturating_mul(1024 * 1024),
        )?;
        let lake = Lake::new(&cfg.lake_url(), &cfg.lake.storage_options)?;
        let tables = LakeTables::new(lake);
        for t in [Table::Readings, Table::Alerts, Table::Quarantine] {
            ctx.register_table(t.name(), Arc::new(LakeTable::new(tables.clone(), t)))?;
        }
        for t in fjord_lake::tables::views_tables(cfg) {
            let Table::Occupancy(size) = t else { continue };
            let merged = MergedOccupancy::new(tables.clone(), t, size, speed.clone());
            ctx.register_table(t.name(), Arc::new(merged))?;
        }
        ctx.register_table(
            "occupancy_live",
            Arc::new(LiveTable::new(speed.clone(), Live::Occupancy)),
        )?;
        ctx.register_table(
            "spaces_live",
            Arc::new(LiveTable::new(speed.clone(), Live::Spaces)),
        )?;
        let forecast = if cfg.forecast_enabled() {
            let lake = Lake::new(&cfg.lake_url(), &cfg.lake.storage_options)?;
            Some(ForecastSource::new(lake, cfg.forecast.refresh.std()))
        } else {
            None
        };
        if let Some(source) = &forecast {
            ctx.register_table(
                "occupancy_forecast",
                Arc::new(ForecastTable::new(source.clone(), speed)),
            )?;
        }
        let lots = lots_batch(&cfg.lots_registry()?);
        let mem = MemTable::try_new(fjord_core::schema::lots(), vec![vec![lots]])?;
        ctx.register_table("lots", Arc::new(mem))?;
        Ok(Self {
            ctx,
            forecast,
            limits,
            runtime: QueryRuntime::new()?,
        })
    }

    /// The threads queries run on.
    pub fn runtime(&self) -> &Arc<QueryRuntime> {
        &self.runtime
    }

    /// The session (shared by every interface).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The forecast's profiles, when the forecast is on.
    pub fn forecast(&self) -> Option<&Arc<ForecastSource>> {
        self.forecast.as_ref()
    }

    /// The per-query limits.
    pub fn limits(&self) -> crate::limits::Limits {
        self.limits
    }
}

/// The registry as a batch of [`fjord_core::schema::lots`].
pub fn lots_batch(lots: &LotsRegistry) -> RecordBatch {
    let (mut id, mut name, mut zone) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut capacity = Int32Builder::new();
    let (mut lat, mut lon) = (Float64Builder::new(), Float64Builder::new());
    for l in lots.iter() {
        id.append_value(&l.lot_id);
        name.append_value(&l.name);
        zone.append_value(&l.zone);
        capacity.append_value(i32::try_from(l.capacity).unwrap_or(i32::MAX));
        lat.append_option(l.lat);
        lon.append_option(l.lon);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(name.finish()),
        Arc::new(zone.finish()),
        Arc::new(capacity.finish()),
        Arc::new(lat.finish()),
        Arc::new(lon.finish()),
    ];
    RecordBatch::try_new(fjord_core::schema::lots(), columns)
        .unwrap_or_else(|e| unreachable!("lots batch does not match its schema: {e}"))
}
