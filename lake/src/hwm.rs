//! The batch high-water mark (docs/contract.md §4.3): `fjord batch views` records, in each commit
//! of a views table, the instant up to which its windows are final, as the version of a Delta
//! application transaction. The serving layer reads it to merge batch rows with speed rows.

use deltalake::DeltaTable;

use crate::error::{Error, Result};

/// Application id of the batch high-water mark (epoch ms).
pub const HWM_APP_ID: &str = "fjord:views:hwm";

/// The version of application transaction `app_id` in `table`'s current snapshot (`name` names
/// the table in errors).
pub async fn txn_version(table: &DeltaTable, name: &str, app_id: &str) -> Result<Option<i64>> {
    let Ok(snapshot) = table.snapshot() else {
        return Ok(None);
    };
    snapshot
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(|e| Error::delta(name, e))
}
