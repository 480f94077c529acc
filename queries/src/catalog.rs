//! The SQL catalog: the lake's Delta tables (`readings`, `alerts`, `quarantine`, and the batch views
//! `occupancy_1m` / `occupancy_10m`) and `lots` from the registry. Tables not created yet are absent.
//! Each session reads the tables' latest versions, so new lake commits are visible to new queries.
//! (The speed-layer merge of SPEC §4.3 is not built yet: the views are the batch rows.)

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int32Builder, RecordBatch, StringBuilder};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use fjord_batch::{Lake, Table};
use fjord_core::config::Config;
use fjord_core::lots::LotsRegistry;

use crate::Result;

/// The lake tables SQL sees, by name.
pub const LAKE_TABLES: [Table; 5] = [
    Table::Readings,
    Table::Alerts,
    Table::Quarantine,
    Table::Occupancy1m,
    Table::Occupancy10m,
];

/// A session with every existing lake table and `lots` registered.
pub async fn session(cfg: &Config) -> Result<SessionContext> {
    let lake = Lake::new(&cfg.lake_url(), &cfg.lake.storage_options)?;
    let mut tables = Vec::new();
    for t in LAKE_TABLES {
        if let Some(delta) = lake.open_existing(t).await? {
            tables.push((t.name(), delta));
        }
    }
    let refs: Vec<(&str, &deltalake::DeltaTable)> = tables.iter().map(|(n, t)| (*n, t)).collect();
    let ctx = fjord_batch::query::session(&refs).await?;
    let lots = lots_batch(&cfg.lots_registry()?);
    let mem = MemTable::try_new(fjord_core::schema::lots(), vec![vec![lots]])?;
    ctx.register_table("lots", Arc::new(mem))?;
    Ok(ctx)
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

/// Runs one read-only query (see [`crate::guard`]) and collects the result.
pub async fn query(cfg: &Config, sql: &str) -> Result<Vec<RecordBatch>> {
    let sql = crate::guard::check(sql)?;
    let ctx = session(cfg).await?;
    Ok(ctx.sql(sql).await?.collect().await?)
}
