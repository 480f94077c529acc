//! The catalog metadata calls of Flight SQL: catalogs, schemas, tables (with their Arrow
//! schemas), table types and what the server says about itself.

use std::sync::LazyLock;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, SqlInfo,
};
use datafusion::prelude::SessionContext;
use tonic::Status;

/// What the server says about itself (`CommandGetSqlInfo`).
pub(super) static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "fjord");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.build().expect("static SQL info is valid")
});

/// `CommandGetCatalogs`: the catalogs, sorted.
pub(super) fn catalogs(
    ctx: &SessionContext,
    query: CommandGetCatalogs,
) -> Result<RecordBatch, arrow_flight::error::FlightError> {
    let mut b = query.into_builder();
    let mut names = ctx.catalog_names();
    names.sort();
    for name in names {
        b.append(name);
    }
    b.build()
}

/// `CommandGetDbSchemas`: every catalog's schemas (the builder filters and sorts).
pub(super) fn schemas(
    ctx: &SessionContext,
    query: CommandGetDbSchemas,
) -> Result<RecordBatch, arrow_flight::error::FlightError> {
    let mut b = query.into_builder();
    for catalog_name in ctx.catalog_names() {
        if let Some(catalog) = ctx.catalog(&catalog_name) {
            for schema_name in catalog.schema_names() {
                b.append(&catalog_name, schema_name);
            }
        }
    }
    b.build()
}

/// `CommandGetTables`: fjord's tables as `TABLE`, `information_schema` and `pg_catalog` as `VIEW`.
pub(super) async fn tables(
    ctx: &SessionContext,
    query: CommandGetTables,
) -> Result<RecordBatch, Status> {
    let mut b = query.into_builder();
    for (catalog, schema, table, table_schema) in all_tables(ctx).await {
        let kind = if schema == "information_schema" || schema == "pg_catalog" {
            "VIEW"
        } else {
            "TABLE"
        };
        b.append(catalog, schema, table, kind, &table_schema)
            .map_err(|e| Status::internal(e.to_string()))?;
    }
    b.build().map_err(|e| Status::internal(e.to_string()))
}

/// `CommandGetTableTypes`: `TABLE` and `VIEW`.
pub(super) fn table_types(
    query: CommandGetTableTypes,
) -> Result<RecordBatch, arrow_flight::error::FlightError> {
    let mut b = query.into_builder();
    b.append("TABLE");
    b.append("VIEW");
    b.build()
}

/// The tables of the session: (catalog, schema, table, schema of the table).
async fn all_tables(ctx: &SessionContext) -> Vec<(String, String, String, SchemaRef)> {
    let mut out = Vec::new();
    for catalog_name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            for table in schema.table_names() {
                if let Ok(Some(t)) = schema.table(&table).await {
                    out.push((catalog_name.clone(), schema_name.clone(), table, t.schema()));
                }
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
    out
}
