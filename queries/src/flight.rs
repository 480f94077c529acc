//! Arrow Flight SQL (`arrow-flight`), the interface of ADBC and JDBC Flight SQL drivers: queries
//! (`CommandStatementQuery`), prepared statements with parameters, and the catalog metadata calls
//! (catalogs, schemas, tables, table types, SQL info).
//!
//! * **Auth.** Every call carries `authorization: Bearer <auth.token>` or `Basic` user `fjord`
//!   with the token as password; the handshake checks basic credentials and answers the bearer
//!   token (header and payload), as the ADBC and JDBC drivers expect.
//! * **Stateless.** A ticket carries the SQL, a prepared statement's handle carries the SQL and its
//!   bound parameters (Arrow IPC), so nothing is kept per client and any number of `DoGet`s of a
//!   ticket see the lake as it is then.
//! * **Limits.** Every query runs through [`crate::exec`]: read-only, time, memory and row limits;
//!   a limit ends the stream with `RESOURCE_EXHAUSTED` and a message naming it.

use std::pin::Pin;
use std::sync::LazyLock;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket, decode::FlightRecordBatchStream,
};
use base64::Engine;
use datafusion::common::ScalarValue;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status, Streaming};

use crate::Error;
use crate::auth::Credentials;
use crate::catalog::Catalog;
use crate::metrics::{QueryMetrics, outcome};

/// The metrics label of this interface.
const INTERFACE: &str = "flight";

/// The Flight SQL service.
#[derive(Clone)]
pub struct FlightSql {
    catalog: Catalog,
    credentials: Credentials,
    metrics: QueryMetrics,
}

type DataStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// What the server says about itself (`CommandGetSqlInfo`).
static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
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

/// A prepared statement's handle: its SQL and the parameters bound to it (one row, Arrow IPC).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Handle {
    sql: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    params: String,
}

impl Handle {
    fn encode(&self) -> bytes::Bytes {
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    fn decode(bytes: &[u8]) -> Result<Self, Status> {
        serde_json::from_slice(bytes)
            .map_err(|_| Status::invalid_argument("not a prepared statement handle of this server"))
    }

    /// The bound values, `$1` first.
    fn values(&self) -> Result<Vec<ScalarValue>, Status> {
        if self.params.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.params)
            .map_err(|_| Status::invalid_argument("corrupt parameters in the handle"))?;
        let reader = StreamReader::try_new(bytes.as_slice(), None)
            .map_err(|e| Status::invalid_argument(format!("corrupt parameters: {e}")))?;
        let mut values = Vec::new();
        for batch in reader {
            let batch =
                batch.map_err(|e| Status::invalid_argument(format!("corrupt parameters: {e}")))?;
            if batch.num_rows() == 0 {
                continue;
            }
            for column in batch.columns() {
                values.push(
                    ScalarValue::try_from_array(column, 0)
                        .map_err(|e| Status::invalid_argument(e.to_string()))?,
                );
            }
            break;
        }
        Ok(values)
    }
}

/// Serialises one row of parameters as Arrow IPC (base64), or nothing for no rows.
fn params_ipc(batches: &[RecordBatch]) -> Result<String, Status> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Ok(String::new());
    }
    if rows > 1 {
        return Err(Status::invalid_argument(format!(
            "{rows} rows of parameters were bound; a query takes one row of parameters at a time"
        )));
    }
    let batch = batches
        .iter()
        .find(|b| b.num_rows() == 1)
        .ok_or_else(|| Status::internal("parameter row vanished"))?;
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, &batch.schema())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        w.write(batch)
            .and_then(|()| w.finish())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// The gRPC status of a query error: refusals are `PERMISSION_DENIED`, limits
/// `RESOURCE_EXHAUSTED`, bad SQL `INVALID_ARGUMENT`.
fn status(e: &Error) -> Status {
    match e {
        Error::Refused(_) => Status::permission_denied(e.to_string()),
        Error::Limit(_) => Status::resource_exhausted(e.to_string()),
        Error::Query(_) | Error::Engine(_) | Error::Format(_) => {
            Status::invalid_argument(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

/// A `FlightInfo` with one endpoint whose ticket is `ticket`, served by this server.
fn info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor)
        .with_ordered(true);
    Ok(Response::new(info))
}

/// One batch as a Flight data stream.
fn one_batch<E: std::fmt::Display>(
    batch: Result<RecordBatch, E>,
) -> Result<Response<DataStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let schema = batch.schema();
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async move { Ok(batch) }))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(stream)))
}

impl FlightSql {
    /// The service over `catalog`, open to `credentials`.
    pub fn new(catalog: Catalog, credentials: Credentials, metrics: QueryMetrics) -> Self {
        Self {
            catalog,
            credentials,
            metrics,
        }
    }

    /// Refuses a call without valid credentials.
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let ok = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| self.credentials.check_header(v));
        if ok {
            Ok(())
        } else {
            self.metrics
                .queries
                .with_label_values(&[INTERFACE, "unauthorized"])
                .inc();
            Err(Status::unauthenticated(
                "wrong or missing credentials: use user fjord with auth.token as password, \
                 or the header `authorization: Bearer <auth.token>`",
            ))
        }
    }

    /// The `FlightInfo` of a metadata command: one endpoint whose ticket is the command itself.
    fn command_info<C: ProstMessageExt>(
        &self,
        request: Request<FlightDescriptor>,
        schema: &Schema,
        command: &C,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        info(
            schema,
            command.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    /// Plans `sql` for its schema; failures are counted as the query's outcome.
    async fn describe(&self, sql: &str) -> Result<(SchemaRef, Vec<Option<DataType>>), Status> {
        let started = Instant::now();
        crate::exec::describe(&self.catalog, sql)
            .await
            .map_err(|e| {
                let seconds = started.elapsed().as_secs_f64();
                self.metrics.observe(INTERFACE, outcome(Some(&e)), seconds);
                tracing::info!(error = %e, "flight sql: query refused or failed to plan");
                status(&e)
            })
    }

    /// Runs `sql` with `params` and streams its result within the limits.
    async fn run(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<Response<DataStream>, Status> {
        let started = Instant::now();
        let (schema, batches) =
            match crate::exec::start_with_params(&self.catalog, sql, params).await {
                Ok(r) => r,
                Err(e) => {
                    self.metrics.observe(
                        INTERFACE,
                        outcome(Some(&e)),
                        started.elapsed().as_secs_f64(),
                    );
                    return Err(status(&e));
                }
            };
        let metrics = self.metrics.clone();
        // counts the query once: at its first error, or when its last batch has been taken
        let counted = futures::stream::unfold(Some(batches), move |batches| {
            let metrics = metrics.clone();
            async move {
                let mut batches = batches?;
                let next = batches.next().await;
                let seconds = started.elapsed().as_secs_f64();
                match next {
                    Some(Ok(batch)) => Some((Ok(batch), Some(batches))),
                    Some(Err(e)) => {
                        metrics.observe(INTERFACE, outcome(Some(&e)), seconds);
                        Some((Err(FlightError::Tonic(Box::new(status(&e)))), None))
                    }
                    None => {
                        metrics.observe(INTERFACE, "ok", seconds);
                        None
                    }
                }
            }
        });
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(counted)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    /// The tables of the session: (catalog, schema, table, schema of the table).
    async fn tables(&self) -> Vec<(String, String, String, SchemaRef)> {
        let ctx = self.catalog.context();
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
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        self.authorize(&request)?;
        let bearer = format!("Bearer {}", self.credentials.token());
        let payload = HandshakeResponse {
            protocol_version: 0,
            payload: self.credentials.token().as_bytes().to_vec().into(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(futures::stream::iter([Ok(payload)])));
        let value = bearer
            .parse()
            .map_err(|_| Status::internal("token is not a valid header value"))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let (schema, _) = self.describe(&query.query).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let sql = std::str::from_utf8(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("the ticket is not SQL text"))?;
        self.run(sql, Vec::new()).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.authorize(&request)?;
        let (schema, params) = self.describe(&query.query).await?;
        let params = Schema::new(
            params
                .into_iter()
                .enumerate()
                .map(|(i, ty)| {
                    Field::new(format!("${}", i + 1), ty.unwrap_or(DataType::Null), true)
                })
                .collect::<Vec<_>>(),
        );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: Handle {
                sql: query.query,
                params: String::new(),
            }
            .encode(),
            dataset_schema: ipc_schema(&schema)?,
            parameter_schema: ipc_schema(&params)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.authorize(&request)?;
        let handle = Handle::decode(&query.prepared_statement_handle)?;
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        )
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}")))?;
        let bound = Handle {
            sql: handle.sql,
            params: params_ipc(&batches)?,
        };
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(bound.encode()),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let handle = Handle::decode(&cmd.prepared_statement_handle)?;
        let (schema, _) = self.describe(&handle.sql).await?;
        info(&schema, cmd.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let handle = Handle::decode(&cmd.prepared_statement_handle)?;
        let values = handle.values()?;
        self.run(&handle.sql, values).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        // handles are self-contained: nothing to free
        self.authorize(&request)
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.command_info(request, &schema, &query)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut b = query.into_builder();
        let mut names = self.catalog.context().catalog_names();
        names.sort();
        for name in names {
            b.append(name);
        }
        one_batch(b.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(request, &schema, &query)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut b = query.into_builder();
        let ctx = self.catalog.context();
        for catalog_name in ctx.catalog_names() {
            if let Some(catalog) = ctx.catalog(&catalog_name) {
                for schema_name in catalog.schema_names() {
                    b.append(&catalog_name, schema_name);
                }
            }
        }
        one_batch(b.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(request, &schema, &query)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut b = query.into_builder();
        for (catalog, schema, table, table_schema) in self.tables().await {
            let kind = if schema == "information_schema" || schema == "pg_catalog" {
                "VIEW"
            } else {
                "TABLE"
            };
            b.append(catalog, schema, table, kind, &table_schema)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        one_batch(b.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.command_info(request, &schema, &query)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut b = query.into_builder();
        b.append("TABLE");
        b.append("VIEW");
        one_batch(b.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&SQL_INFO).schema();
        self.command_info(request, &schema, &query)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        one_batch(query.into_builder(&SQL_INFO).build())
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        Err(Status::unimplemented(format!(
            "fjord's Flight SQL does not serve {}",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Serves Flight SQL on `listener` until `shutdown` turns true; with `tls` (whose ALPN must offer
/// `h2`), gRPC over TLS (`grpc+tls://`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: FlightSql,
    tls: Option<std::sync::Arc<fjord_core::tls::ServerConfig>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> crate::Result<()> {
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let server = tonic::transport::Server::builder().add_service(FlightServiceServer::new(service));
    let served = match tls {
        None => {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            server.serve_with_incoming_shutdown(incoming, stop).await
        }
        Some(config) => {
            let tls = fjord_core::tls::TlsListener::new(listener, config)?;
            let incoming = futures::stream::unfold(tls, |mut tls| async move {
                let (stream, _) = tls.next().await?;
                Some((Ok::<_, std::io::Error>(TlsConn(stream)), tls))
            });
            server.serve_with_incoming_shutdown(incoming, stop).await
        }
    };
    served.map_err(|e| Error::Serve(format!("flight sql (serve.flight_listen): {e}")))
}

/// A TLS connection as tonic's server takes it (its `Connected` impl for TLS streams needs a TLS
/// feature of tonic; fjord terminates TLS itself, as for its other listeners).
struct TlsConn(fjord_core::tls::ServerStream);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::Connected::connect_info(self.0.get_ref().0)
    }
}

impl tokio::io::AsyncRead for TlsConn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut self.0), cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(std::pin::Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(std::pin::Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(std::pin::Pin::new(&mut self.0), cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write_vectored(std::pin::Pin::new(&mut self.0), cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        tokio::io::AsyncWrite::is_write_vectored(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn a_handle_carries_its_sql_and_one_row_of_parameters() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![7])),
                Arc::new(StringArray::from(vec!["L1"])),
            ],
        )
        .unwrap();
        let handle = Handle {
            sql: "SELECT $1, $2".into(),
            params: params_ipc(std::slice::from_ref(&batch)).unwrap(),
        };
        let back = Handle::decode(&handle.encode()).unwrap();
        assert_eq!(back, handle);
        assert_eq!(
            back.values().unwrap(),
            vec![
                ScalarValue::Int64(Some(7)),
                ScalarValue::Utf8(Some("L1".into()))
            ]
        );
        let two = arrow::compute::concat_batches(&batch.schema(), [&batch, &batch]).unwrap();
        let e = params_ipc(&[two]).unwrap_err();
        assert!(e.message().contains("one row of parameters"), "{e}");
        assert!(Handle::decode(b"garbage").is_err());
        assert_eq!(params_ipc(&[]).unwrap(), "");
    }

    #[test]
    fn errors_map_to_grpc_codes() {
        use tonic::Code;
        assert_eq!(
            status(&Error::Refused("DROP".into())).code(),
            Code::PermissionDenied
        );
        assert_eq!(
            status(&Error::Limit("rows".into())).code(),
            Code::ResourceExhausted
        );
        assert_eq!(
            status(&Error::Query("bad".into())).code(),
            Code::InvalidArgument
        );
    }
}
