//! The lake: Delta tables under one object-store URL (docs/contract.md §6). Opens a table, creating it with
//! its schema (docs/contract.md §6) and `date` partitioning the first time, on `file://` or `s3://` alike.

use std::collections::{BTreeMap, HashMap};

use arrow::datatypes::SchemaRef;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder};
use url::Url;

use crate::error::{Error, Result};

/// A table of the lake, with its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// `readings` (docs/contract.md §6).
    Readings,
    /// `quarantine`: records that failed decoding.
    Quarantine,
    /// `alerts`: alert state changes (docs/contract.md §5).
    Alerts,
    /// The batch view of windows of this many milliseconds (`stream.windows`): `occupancy_1m`,
    /// `occupancy_10m`, … named by [`occupancy_name`].
    Occupancy(i64),
    /// `forecast_profile`: the forecast's profiles (docs/contract.md §4.4), one model version.
    ForecastProfile,
    /// Internal: each space's last reading at the end of each day, carried into the next day by
    /// the views job.
    SpaceState,
}

impl Table {
    /// The table's directory under the lake root.
    pub fn name(self) -> &'static str {
        match self {
            Table::Readings => "readings",
            Table::Quarantine => "quarantine",
            Table::Alerts => "alerts",
            Table::Occupancy(size_ms) => occupancy_name(size_ms),
            Table::ForecastProfile => "forecast_profile",
            Table::SpaceState => "_space_state",
        }
    }

    /// The Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Readings => fjord_core::schema::readings(),
            Table::Quarantine => fjord_core::schema::quarantine(),
            Table::Alerts => fjord_core::schema::alerts(),
            Table::Occupancy(_) => fjord_core::schema::occupancy(),
            Table::ForecastProfile => fjord_core::schema::forecast_profile(),
            Table::SpaceState => state_schema(),
        }
    }
}

static STATE_SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| {
    use arrow::datatypes::{DataType, Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("lot_id", DataType::Utf8, false),
        Field::new("space_id", DataType::Utf8, false),
        Field::new("ts", fjord_core::schema::timestamp_type(), false),
        Field::new("occupied", DataType::Boolean, false),
        Field::new("date", DataType::Date32, false),
    ]))
});

/// Schema of `_space_state`: each space's last reading as of the end of `date`.
pub fn state_schema() -> SchemaRef {
    STATE_SCHEMA.clone()
}

/// The views tables of the configured window sizes, in the order configured.
pub fn views_tables(cfg: &fjord_core::config::Config) -> Vec<Table> {
    cfg.stream
        .windows
        .iter()
        .map(|w| Table::Occupancy(w.as_millis_i64()))
        .collect()
}

/// The table name of windows of `size_ms`: `occupancy_` and the size as the config writes it
/// (`occupancy_1m`, `occupancy_10m`, `occupancy_1h`). Names are made once per size and kept for
/// the life of the process (a handful: one per configured window size).
pub fn occupancy_name(size_ms: i64) -> &'static str {
    static NAMES: std::sync::Mutex<BTreeMap<i64, &'static str>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    names.entry(size_ms).or_insert_with(|| {
        let size = fjord_core::duration::Duration::from_millis(u64::try_from(size_ms).unwrap_or(0));
        Box::leak(format!("occupancy_{size}").into_boxed_str())
    })
}

/// Where the lake is and how to reach it.
#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
    options: HashMap<String, String>,
}

impl Lake {
    /// The lake at `url` (`file:///…` or `s3://bucket/prefix`) with object-store `options`.
    pub fn new(url: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let mut root = Url::parse(url)
            .map_err(|e| Error::Config(format!("lake url {url:?} is not a URL: {e}")))?;
        if !matches!(root.scheme(), "file" | "s3" | "s3a" | "memory") {
            return Err(Error::Config(format!(
                "lake url {url:?}: only file:// and s3:// are supported"
            )));
        }
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        if root.scheme() == "file" {
            let dir = root
                .to_file_path()
                .map_err(|()| Error::Config(format!("lake url {url:?} is not a local path")))?;
            std::fs::create_dir_all(&dir).map_err(|e| Error::Input {
                path: dir.display().to_string(),
                reason: format!("cannot create the lake directory: {e}"),
            })?;
        }
        Ok(Self {
            root,
            options: options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// The root URL (ends with `/`).
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The URL of `table`.
    pub fn table_url(&self, table: Table) -> Url {
        // `root` ends with '/', so joining a plain name cannot fail or escape it.
        self.root
            .join(&format!("{}/", table.name()))
            .unwrap_or_else(|_| self.root.clone())
    }

    /// Opens `table` at its latest version, or `None` when it was never written.
    pub async fn open_existing(&self, table: Table) -> Result<Option<DeltaTable>> {
        let name = table.name();
        if let Ok(dir) = self.table_url(table).to_file_path()
            && !dir.join("_delta_log").is_dir()
        {
            return Ok(None);
        }
        let mut t = DeltaTableBuilder::from_url(self.table_url(table))
            .map_err(|e| Error::delta(name, e))?
            .with_storage_options(self.options.clone())
            .build()
            .map_err(|e| Error::delta(name, e))?;
        match t.load().await {
            Ok(()) => Ok(Some(t)),
            Err(deltalake::DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(Error::delta(name, e)),
        }
    }

    /// Opens `table`, creating it (empty, partitioned by `date`) when it does not exist yet.
    /// Two jobs creating it at once is fine: the loser opens what the winner created.
    pub async fn open(&self, table: Table) -> Result<DeltaTable> {
        if let Some(t) = self.open_existing(table).await? {
            return Ok(t);
        }
        let name = table.name();
        if let Ok(dir) = self.table_url(table).to_file_path() {
            std::fs::create_dir_all(&dir).map_err(|e| Error::Input {
                path: dir.display().to_string(),
                reason: format!("cannot create the table directory: {e}"),
            })?;
        }
        let schema: StructType = table
            .schema()
            .as_ref()
            .try_into_kernel()
            .map_err(|e| Error::Config(format!("schema of {name}: {e}")))?;
        let created = DeltaTableBuilder::from_url(self.table_url(table))
            .map_err(|e| Error::delta(name, e))?
            .with_storage_options(self.options.clone())
            .build()
            .map_err(|e| Error::delta(name, e))?
            .create()
            .with_table_name(name)
            .with_columns(schema.fields().cloned())
            .with_partition_columns(["date"])
            .with_save_mode(SaveMode::Ignore)
            .await;
        match created {
            Ok(t) => Ok(t),
            Err(e) => match self.open_existing(table).await? {
                Some(t) => Ok(t),
                None => Err(Error::delta(name, e)),
            },
        }
    }
}
