//! Running one query within the limits of docs/contract.md §7: read-only and of bounded size
//! ([`crate::guard`]), a time limit over planning, execution and handing over the result (also when
//! the client stops reading), a row and a byte limit on what it returns, and the session's memory
//! limit. Hitting one ends that query with [`Error::Limit`] naming the limit and its config key;
//! other queries go on. Everything runs on the query threads ([`crate::runtime`]).

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::{Error, Result};

pub use crate::limits::Limits;

pub use crate::runtime::Batches;

/// Plans and starts `sql`; the stream ends with an error when a limit is hit.
pub async fn start(catalog: &Catalog, sql: &str) -> Result<(arrow::datatypes::SchemaRef, Batches)> {
    start_with_params(catalog, sql, Vec::new()).await
}

/// [`start`] with values for the placeholders `$1`, `$2`, … of `sql`, each cast to the type its
/// placeholder has in the query.
pub async fn start_with_params(
    catalog: &Catalog,
    sql: &str,
    params: Vec<ScalarValue>,
) -> Result<(arrow::datatypes::SchemaRef, Batches)> {
    let limits = catalog.limits();
    let deadline = Instant::now() + limits.timeout;
    let (on_threads, sql) = (catalog.clone(), sql.to_owned());
    let planned = catalog
        .runtime()
        .run(async move {
            tokio::time::timeout_at(deadline, async move {
                let df = plan(&on_threads, &sql).await?;
                let df = if params.is_empty() {
                    df
                } else {
                    bind(df, params)?
                };
                df.execute_stream().await.map_err(|e| limits.error(e))
            })
            .await
            .map_err(|_| limits.time_error())?
        })
        .await?;
    let schema = planned.schema();
    let batches = limited(planned, limits, deadline);
    Ok((schema, catalog.runtime().pump(batches, limits, deadline)))
}

/// What running `sql` would return, and the types of its placeholders (`$1` first; `None` where
/// the query does not fix one), without running it.
pub async fn describe(
    catalog: &Catalog,
    sql: &str,
) -> Result<(arrow::datatypes::SchemaRef, Vec<Option<DataType>>)> {
    let limits = catalog.limits();
    let (on_threads, sql) = (catalog.clone(), sql.to_owned());
    catalog
        .runtime()
        .run(async move {
            let df = tokio::time::timeout(limits.timeout, plan(&on_threads, &sql))
                .await
                .map_err(|_| limits.time_error())??;
            let params = parameter_types(&df)?;
            Ok((std::sync::Arc::new(df.schema().as_arrow().clone()), params))
        })
        .await
}

/// The guard, then planning with DDL, DML and `SET` disabled on the shared session (defence in
/// depth behind the guard).
async fn plan(catalog: &Catalog, sql: &str) -> Result<DataFrame> {
    let sql = crate::guard::check(sql, &catalog.limits().sql)?;
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    catalog
        .context()
        .sql_with_options(sql, options)
        .await
        .map_err(|e| catalog.limits().error(e))
}

/// The placeholder types of a planned query, `$1` first.
fn parameter_types(df: &DataFrame) -> Result<Vec<Option<DataType>>> {
    let types = df.logical_plan().get_parameter_types()?;
    let mut numbered = Vec::with_capacity(types.len());
    for (name, ty) in types {
        let n = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                Error::Query(format!(
                    "placeholder {name} is not supported: number them $1, $2, …"
                ))
            })?;
        numbered.push((n, ty));
    }
    numbered.sort_by_key(|(n, _)| *n);
    for (i, (n, _)) in numbered.iter().enumerate() {
        if *n != i + 1 {
            return Err(Error::Query(format!(
                "placeholder ${} is missing: number them $1, $2, … without gaps",
                i + 1
            )));
        }
    }
    Ok(numbered.into_iter().map(|(_, ty)| ty).collect())
}

/// Binds `params` to the placeholders of `df`, casting each to its placeholder's type.
fn bind(df: DataFrame, params: Vec<ScalarValue>) -> Result<DataFrame> {
    let types = parameter_types(&df)?;
    if types.len() != params.len() {
        return Err(Error::Query(format!(
            "the query has {} placeholder(s) but {} value(s) were bound",
            types.len(),
            params.len()
        )));
    }
    let values = params
        .into_iter()
        .zip(types)
        .enumerate()
        .map(|(i, (value, ty))| match ty {
            Some(ty) if value.data_type() != ty => value.cast_to(&ty).map_err(|e| {
                Error::Query(format!(
                    "parameter ${} ({value}) cannot be used as {ty}: {e}",
                    i + 1
                ))
            }),
            _ => Ok(value),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(df.with_param_values(values)?)
}

/// `stream` ending with an error at `deadline` or past `limits.max_rows` rows.
pub fn limited(stream: SendableRecordBatchStream, limits: Limits, deadline: Instant) -> Batches {
    struct State {
        stream: SendableRecordBatchStream,
        rows: u64,
        bytes: u64,
        done: bool,
    }
    let state = State {
        stream,
        rows: 0,
        bytes: 0,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, move |mut s| async move {
        if s.done {
            return None;
        }
        let next = match tokio::time::timeout_at(deadline, s.stream.next()).await {
            Err(_) => Some(Err(limits.time_error())),
            Ok(None) => None,
            Ok(Some(Err(e))) => Some(Err(limits.error(e))),
            Ok(Some(Ok(b))) => {
                s.rows += b.num_rows() as u64;
                s.bytes += batch_bytes(&b);
                if s.rows > limits.max_rows {
                    Some(Err(limits.rows_error()))
                } else if s.bytes > limits.max_result_bytes {
                    Some(Err(limits.bytes_error()))
                } else {
                    Some(Ok(b))
                }
            }
        };
        match next {
            Some(Err(e)) => {
                s.done = true;
                Some((Err(e), s))
            }
            Some(ok) => Some((ok, s)),
            None => None,
        }
    }))
}

/// The bytes of Arrow data `b` holds (a slice counts its part of the buffers, not all of them).
fn batch_bytes(b: &RecordBatch) -> u64 {
    b.columns()
        .iter()
        .map(|c| {
            let data = c.to_data();
            data.get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size()) as u64
        })
        .sum()
}

/// Runs `sql` and collects its result.
pub async fn collect(catalog: &Catalog, sql: &str) -> Result<Vec<RecordBatch>> {
    let (_, mut stream) = start(catalog, sql).await?;
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        out.push(b?);
    }
    Ok(out)
}

/// Runs one read-only query against the lake (the speed layer empty: `fjord sql`) and collects the
/// result, within the `[serve]` limits.
pub async fn query(cfg: &fjord_core::config::Config, sql: &str) -> Result<Vec<RecordBatch>> {
    let catalog = Catalog::open(cfg, crate::speed::Speed::new())?;
    collect(&catalog, sql).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::error::DataFusionError;
    use fjord_core::config::{Config, ServeConfig};

    fn catalog(f: impl FnOnce(&mut ServeConfig)) -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.lake.url = Some(format!("file://{}", dir.path().display()));
        f(&mut cfg.serve);
        let c = Catalog::open(&cfg, crate::speed::Speed::new()).unwrap();
        (dir, c)
    }

    #[tokio::test]
    async fn each_limit_ends_only_its_query_and_names_itself() {
        let (_d, c) = catalog(|s| {
            s.max_result_rows = 1_000;
            s.query_memory_mb = 16;
            s.query_spill_mb = 0;
            s.query_timeout = fjord_core::duration::Duration::from_secs(2);
        });
        let rows = collect(&c, "SELECT * FROM generate_series(1, 100000)").await;
        let e = rows.unwrap_err().to_string();
        assert!(
            e.contains("row limit of 1000 rows (serve.max_result_rows)"),
            "{e}"
        );

        let (_d2, small) = catalog(|s| s.max_result_mb = 1);
        let e = collect(
            &small,
            "SELECT v, repeat('x', 100) AS pad FROM generate_series(1, 20000) t(v)",
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("result limit of 1 MiB (serve.max_result_mb)"),
            "{e}"
        );

        let sort = "SELECT v, repeat('x', 64) AS pad FROM generate_series(1, 2000000) t(v) ORDER BY v DESC LIMIT 5000000";
        let e = collect(&c, &format!("SELECT count(*) FROM ({sort})"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("memory than the limit of 16 MiB (serve.query_memory_mb)"),
            "{e}"
        );

        let slow = "SELECT max(a.value + b.value) FROM generate_series(1, 200000) a CROSS JOIN generate_series(1, 200000) b";
        let e = collect(&c, slow).await.unwrap_err().to_string();
        assert!(e.contains("time limit of 2s (serve.query_timeout)"), "{e}");

        // the session still serves
        let ok = collect(&c, "SELECT count(*) AS n FROM generate_series(1, 10)")
            .await
            .unwrap();
        assert_eq!(ok[0].num_rows(), 1);
    }

    #[tokio::test]
    async fn a_sort_larger_than_its_memory_spills_up_to_the_spill_limit() {
        use arrow::array::AsArray;
        use arrow::datatypes::Int64Type;
        // about 150 MB of rows through a 32 MiB pool, the whole sorted result returned
        let sort = "SELECT v, repeat('x', 64) AS pad FROM generate_series(1, 2000000) t(v) ORDER BY v DESC";
        let (_d, c) = catalog(|s| {
            s.query_memory_mb = 32;
            s.query_spill_mb = 1024;
            s.max_result_rows = 3_000_000;
        });
        let rows = collect(&c, sort).await.unwrap();
        let v: Vec<i64> = rows
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(v.len(), 2_000_000);
        assert!(v.iter().zip((1..=2_000_000).rev()).all(|(a, b)| *a == b));

        let (_d2, small) = catalog(|s| {
            s.query_memory_mb = 32;
            s.query_spill_mb = 16;
            s.max_result_rows = 3_000_000;
        });
        let e = collect(&small, sort).await.unwrap_err().to_string();
        assert!(
            e.contains("more disk to spill to than the limit of 16 MiB (serve.query_spill_mb)"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_engine_error_keeps_its_cause_and_reads_as_before() {
        let (_d, c) = catalog(|_| {});
        let e = collect(&c, "SELECT no_such_column FROM lots")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Engine(_)), "{e:?}");
        let cause = std::error::Error::source(&e).expect("the DataFusion error is kept");
        assert!(cause.is::<Box<DataFusionError>>(), "{cause:?}");
        assert_eq!(e.to_string(), cause.to_string());
        assert!(e.to_string().contains("no_such_column"), "{e}");
    }

    #[tokio::test]
    async fn parameters_are_typed_by_their_placeholder_and_numbered_without_gaps() {
        let (_d, c) = catalog(|_| {});
        let sql = "SELECT $1 + 1 AS v, lot_id FROM lots WHERE lot_id = $2";
        let (schema, params) = describe(&c, sql).await.unwrap();
        assert_eq!(schema.field(0).name(), "v");
        assert_eq!(params, vec![Some(DataType::Int64), Some(DataType::Utf8)]);
        // an Int32 is cast to the Int64 its placeholder wants
        let (_, mut rows) =
            start_with_params(&c, "SELECT $1 + 1 AS v", vec![ScalarValue::Int32(Some(41))])
                .await
                .unwrap();
        let b = rows.next().await.unwrap().unwrap();
        let v = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>();
        assert_eq!(v.map(|a| a.value(0)), Some(42));
        let e = describe(&c, "SELECT $2 + 1").await.unwrap_err().to_string();
        assert!(e.contains("$1 is missing"), "{e}");
        let e = start_with_params(&c, "SELECT $1 + 1", vec![])
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.is_empty(), "an unbound placeholder fails");
        let e = start_with_params(
            &c,
            "SELECT $1 + 1",
            vec![ScalarValue::Int64(Some(1)), ScalarValue::Int64(Some(2))],
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("1 placeholder(s) but 2 value(s)"), "{e}");
        let e = describe(&c, "DROP TABLE lots").await.unwrap_err();
        assert!(matches!(e, Error::Refused(_)), "{e}");
    }

    #[tokio::test]
    async fn every_table_of_the_spec_is_there_and_empty_on_an_empty_lake() {
        let (_d, c) = catalog(|_| {});
        for t in [
            "readings",
            "alerts",
            "quarantine",
            "occupancy_1m",
            "occupancy_10m",
            "occupancy_live",
            "spaces_live",
            "lots",
        ] {
            let b = collect(&c, &format!("SELECT * FROM {t}")).await.unwrap();
            let n: usize = b.iter().map(RecordBatch::num_rows).sum();
            assert_eq!(n, 0, "{t}");
        }
    }
}
