//! The tables SQL sees, as DataFusion table providers that look at the current state on every scan,
//! so one long-lived session serves new lake commits and new speed-layer data without a restart:
//!
//! * [`LakeTable`] — a Delta table at its latest version (`readings`, `alerts`, `quarantine`);
//!   filters are handed to the Delta scan, which prunes `date` partitions and files by statistics.
//! * [`MergedOccupancy`] — `occupancy_1m` / `occupancy_10m` of docs/contract.md §4.3: batch rows of windows
//!   ending at or before the batch high-water mark, speed rows of later windows, never both.
//! * [`LiveTable`] — `occupancy_live` and `spaces_live`, snapshots of the speed layer; a scan of
//!   `spaces_live` whose filters name its lots (`lot_id = 'A'`, `lot_id IN ('A', 'B')`) builds only
//!   their rows.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::{MemTable, TableProvider, TableType, provider_as_source};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    Expr, LogicalPlanBuilder, TableProviderFilterPushDown, cast, col, lit,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake::DeltaTable;
use fjord_core::time::TimestampMs;
use fjord_lake::hwm::HWM_APP_ID;
use fjord_lake::{Lake, Table};

use crate::speed::Speed;

/// The lake's Delta tables, opened once and brought up to date before each scan.
pub struct LakeTables {
    lake: Lake,
    open: tokio::sync::Mutex<HashMap<Table, DeltaTable>>,
}

impl std::fmt::Debug for LakeTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeTables").finish_non_exhaustive()
    }
}

impl LakeTables {
    /// The tables of `lake`.
    pub fn new(lake: Lake) -> Arc<Self> {
        Arc::new(Self {
            lake,
            open: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// `table` at its latest version, or `None` when it was never written.
    pub async fn latest(&self, table: Table) -> DfResult<Option<DeltaTable>> {
        let mut open = self.open.lock().await;
        if let Some(t) = open.get_mut(&table) {
            t.update_incremental(None)
                .await
                .map_err(|e| external(table, e))?;
            return Ok(Some(t.clone()));
        }
        match self.lake.open_existing(table).await {
            Ok(Some(t)) => {
                open.insert(table, t.clone());
                Ok(Some(t))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(external(table, e)),
        }
    }

    /// The batch high-water mark recorded in a views table (docs/contract.md §4.3), if any.
    pub async fn hwm(table: &DeltaTable, name: &str) -> DfResult<Option<TimestampMs>> {
        fjord_lake::hwm::txn_version(table, name, HWM_APP_ID)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

fn external(table: Table, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("cannot read the lake table {}: {e}", table.name()))
}

/// The Delta provider of `t`, with its object store registered in the session.
async fn delta_provider(
    state: &dyn Session,
    table: Table,
    t: &DeltaTable,
) -> DfResult<Arc<dyn TableProvider>> {
    t.update_datafusion_session(state)
        .map_err(|e| external(table, e))?;
    t.table_provider().await.map_err(|e| external(table, e))
}

/// `plan` with the columns of `want`, cast where the Delta scan's types differ (it reads strings as
/// `Utf8View`; SQL sees the schemas of docs/contract.md §6).
fn conform(plan: LogicalPlanBuilder, want: &SchemaRef) -> DfResult<LogicalPlanBuilder> {
    let have = plan.schema().clone();
    let exprs: Vec<Expr> = want
        .fields()
        .iter()
        .map(|f| {
            let c = Expr::Column(Column::new_unqualified(f.name()));
            match have.field_with_unqualified_name(f.name()) {
                Ok(h) if h.data_type() == f.data_type() => c,
                _ => cast(c, f.data_type().clone()).alias(f.name()),
            }
        })
        .collect();
    plan.project(exprs)
}

/// Plans `plan` (with the columns of `schema`) under the scan's filters, projection and limit.
async fn finish(
    state: &dyn Session,
    mut plan: LogicalPlanBuilder,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if let Some(f) = filters.iter().cloned().reduce(Expr::and) {
        plan = plan.filter(unqualified(f)?)?;
    }
    if let Some(p) = projection {
        plan = plan.project(p.iter().map(|i| col(schema.field(*i).name())))?;
    }
    if let Some(n) = limit {
        plan = plan.limit(0, Some(n))?;
    }
    state.create_physical_plan(&plan.build()?).await
}

fn projected(schema: &SchemaRef, projection: Option<&Vec<usize>>) -> DfResult<SchemaRef> {
    Ok(match projection {
        Some(p) => Arc::new(schema.project(p)?),
        None => schema.clone(),
    })
}

/// A lake table at its latest version; empty until it is first written.
#[derive(Debug)]
pub struct LakeTable {
    tables: Arc<LakeTables>,
    table: Table,
}

impl LakeTable {
    /// `table` of `tables`.
    pub fn new(tables: Arc<LakeTables>, table: Table) -> Self {
        Self { tables, table }
    }
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
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
        match self.tables.latest(self.table).await? {
            Some(t) => {
                let p = delta_provider(state, self.table, &t).await?;
                let schema = self.schema();
                let plan = conform(
                    LogicalPlanBuilder::scan(self.table.name(), provider_as_source(p), None)?,
                    &schema,
                )?;
                finish(state, plan, &schema, projection, filters, limit).await
            }
            None => Ok(Arc::new(EmptyExec::new(projected(
                &self.schema(),
                projection,
            )?))),
        }
    }
}

/// `occupancy_1m` or `occupancy_10m` as SQL sees it: the Lambda merge of docs/contract.md §4.3.
#[derive(Debug)]
pub struct MergedOccupancy {
    tables: Arc<LakeTables>,
    table: Table,
    size_ms: i64,
    speed: Arc<Speed>,
}

impl MergedOccupancy {
    /// The merge of views table `table` (windows of `size_ms`) with the speed layer.
    pub fn new(tables: Arc<LakeTables>, table: Table, size_ms: i64, speed: Arc<Speed>) -> Self {
        Self {
            tables,
            table,
            size_ms,
            speed,
        }
    }
}

/// `expr` with every column unqualified (the filters DataFusion hands a scan name the outer table;
/// the merge's inputs have other names).
fn unqualified(expr: Expr) -> DfResult<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            Column::new_unqualified(c.name),
        ))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

#[async_trait]
impl TableProvider for MergedOccupancy {
    fn schema(&self) -> SchemaRef {
        fjord_core::schema::occupancy()
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
        let name = self.table.name();
        let delta = self.tables.latest(self.table).await?;
        let hwm = match &delta {
            Some(t) => LakeTables::hwm(t, name).await?,
            None => None,
        };
        let size = self.size_ms;
        let rows = self.speed.read(|s| s.windows_after(size, hwm));
        let speed = MemTable::try_new(
            self.schema(),
            vec![vec![fjord_lake::rows::occupancy_batch(&rows)]],
        )?;
        let speed = LogicalPlanBuilder::scan("speed", provider_as_source(Arc::new(speed)), None)?
            .build()?;
        let schema = self.schema();
        let plan = match (delta, hwm) {
            (Some(t), Some(h)) => {
                let p = delta_provider(state, self.table, &t).await?;
                let until = lit(ScalarValue::TimestampMicrosecond(
                    Some(h.saturating_mul(1000)),
                    Some("UTC".into()),
                ));
                let batch = LogicalPlanBuilder::scan("batch", provider_as_source(p), None)?
                    .filter(col("window_end").lt_eq(until))?;
                conform(batch, &schema)?.union(speed)?
            }
            _ => LogicalPlanBuilder::from(speed),
        };
        finish(state, plan, &schema, projection, filters, limit).await
    }
}

/// Which live table.
#[derive(Debug, Clone, Copy)]
pub enum Live {
    /// `occupancy_live`
    Occupancy,
    /// `spaces_live`
    Spaces,
}

/// `occupancy_live` or `spaces_live`: a snapshot of the speed layer at scan time.
#[derive(Debug)]
pub struct LiveTable {
    speed: Arc<Speed>,
    which: Live,
}

impl LiveTable {
    /// The `which` table of `speed`.
    pub fn new(speed: Arc<Speed>, which: Live) -> Self {
        Self { speed, which }
    }
}

#[async_trait]
impl TableProvider for LiveTable {
    fn schema(&self) -> SchemaRef {
        match self.which {
            Live::Occupancy => fjord_core::schema::occupancy_live(),
            Live::Spaces => fjord_core::schema::spaces_live(),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // seen by the scan, which uses those naming lots; DataFusion still applies them all
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
        let batch = self.speed.read(|s| match self.which {
            Live::Occupancy => s.live_batch(),
            Live::Spaces => s.spaces_batch(lots.as_ref()),
        });
        MemTable::try_new(self.schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// The lots a row must belong to for `filters` (all of them hold) to pass: from `lot_id = 'A'` and
/// `lot_id IN ('A', 'B')`, intersected; `None` when no filter limits `lot_id` that way.
pub(crate) fn lots_named(filters: &[Expr]) -> Option<BTreeSet<String>> {
    fn lot_column(e: &Expr) -> bool {
        matches!(e, Expr::Column(c) if c.name == "lot_id")
    }
    fn text(e: &Expr) -> Option<String> {
        match e {
            Expr::Literal(
                ScalarValue::Utf8(Some(v))
                | ScalarValue::LargeUtf8(Some(v))
                | ScalarValue::Utf8View(Some(v)),
                _,
            ) => Some(v.clone()),
            _ => None,
        }
    }
    fn one(e: &Expr) -> Option<BTreeSet<String>> {
        match e {
            Expr::BinaryExpr(b) if b.op == datafusion::logical_expr::Operator::Eq => {
                let v = if lot_column(&b.left) {
                    text(&b.right)
                } else if lot_column(&b.right) {
                    text(&b.left)
                } else {
                    None
                };
                v.map(|v| BTreeSet::from([v]))
            }
            Expr::InList(l) if !l.negated && lot_column(&l.expr) => {
                l.list.iter().map(text).collect()
            }
            _ => None,
        }
    }
    filters
        .iter()
        .filter_map(one)
        .reduce(|a, b| a.intersection(&b).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::in_list;

    #[test]
    fn lots_named_by_equality_and_in_lists_are_intersected() {
        let set = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>());
        assert_eq!(lots_named(&[col("lot_id").eq(lit("A"))]), set(&["A"]));
        assert_eq!(lots_named(&[lit("A").eq(col("lot_id"))]), set(&["A"]));
        assert_eq!(
            lots_named(&[
                in_list(col("lot_id"), vec![lit("A"), lit("B")], false),
                col("lot_id").eq(lit("B")),
            ]),
            set(&["B"])
        );
        // nothing that limits lot_id to named values
        assert_eq!(lots_named(&[col("space_id").eq(lit("A"))]), None);
        assert_eq!(
            lots_named(&[in_list(col("lot_id"), vec![lit("A")], true)]),
            None
        );
        assert_eq!(lots_named(&[col("lot_id").gt(lit("A"))]), None);
        // a value that is not text (lot_id = 1) names no lot: everything is built, then filtered
        assert_eq!(lots_named(&[col("lot_id").eq(lit(1))]), None);
    }
}
