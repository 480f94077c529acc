//! `fjord batch vacuum`: deletes the files of every lake table that no current version
//! references — replaced by compaction or views, or written by a job that crashed before its
//! commit — once they are older than `batch.vacuum_retention`.

use deltalake::operations::vacuum::VacuumMode;
use fjord_core::config::Config;

use crate::error::{Error, Result};
use crate::lake::{Lake, Table};

/// What a vacuum did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumSummary {
    /// Files deleted.
    pub files_deleted: u64,
}

/// Every table of the lake, in vacuum order.
fn tables(cfg: &Config) -> Vec<Table> {
    let mut t = vec![Table::Readings, Table::Quarantine, Table::Alerts];
    t.extend(crate::lake::views_tables(cfg));
    t.push(Table::SpaceState);
    t
}

/// Vacuums every table.
pub async fn vacuum(cfg: &Config, lake: &Lake) -> Result<VacuumSummary> {
    let retention = chrono::Duration::milliseconds(cfg.batch.vacuum_retention.as_millis_i64());
    let mut summary = VacuumSummary::default();
    for table in tables(cfg) {
        let Some(t) = lake.open_existing(table).await? else {
            continue;
        };
        let (_, metrics) = t
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_mode(VacuumMode::Full)
            .await
            .map_err(|e| Error::delta(table.name(), e))?;
        if !metrics.files_deleted.is_empty() {
            tracing::info!(
                table = table.name(),
                files = metrics.files_deleted.len(),
                "vacuumed"
            );
        }
        summary.files_deleted += metrics.files_deleted.len() as u64;
    }
    Ok(summary)
}
