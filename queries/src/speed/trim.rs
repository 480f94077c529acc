//! Forgets the speed layer's windows that the batch views now cover: every few seconds, the
//! high-water mark of each views table (`occupancy_<size>`) is read from its Delta log, and the
//! windows of that size ending at or before the mark seen one look earlier are dropped — one look
//! late, so that a query that read the older mark just before still finds the speed windows after
//! it. Queries never change the speed layer; until a trim runs, the merge already hides the covered
//! windows (it takes batch rows up to the mark).

use std::sync::Arc;
use std::time::Duration;

use fjord_lake::{Lake, Table};

use super::Speed;
use crate::tables::LakeTables;

/// How often the high-water marks are looked at.
pub const EVERY: Duration = Duration::from_secs(5);

/// The lowest high-water mark of the views `tables` (`None` while any has none, or when the lake
/// cannot be read: the feed then reads every window).
pub async fn batch_hwm(lake: &Lake, tables: &[Table]) -> Option<i64> {
    let lake_tables = LakeTables::new(lake.clone());
    let mut lowest: Option<i64> = None;
    for &t in tables {
        let d = lake_tables.latest(t).await.ok()??;
        let h = LakeTables::hwm(&d, t.name()).await.ok()??;
        lowest = Some(lowest.map_or(h, |l| l.min(h)));
    }
    lowest
}

/// Trims `speed` for the views `tables` of `lake` until `shutdown`.
pub async fn follow_hwm(
    lake: Lake,
    tables: Vec<Table>,
    speed: Arc<Speed>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let lake_tables = LakeTables::new(lake);
    let mut seen: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
    loop {
        for &t in &tables {
            let Table::Occupancy(size) = t else { continue };
            let hwm = match lake_tables.latest(t).await {
                Ok(Some(d)) => LakeTables::hwm(&d, t.name()).await,
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            match hwm {
                Ok(Some(h)) => {
                    if let Some(earlier) = seen.insert(size, h) {
                        let dropped = speed.write(|s| s.trim(size, earlier));
                        if dropped > 0 {
                            tracing::debug!(table = t.name(), dropped, "speed windows trimmed");
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(table = t.name(), error = %e, "cannot read the batch high-water mark")
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
