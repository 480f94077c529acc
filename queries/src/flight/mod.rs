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
//!
//! Here: the service and its calls; the catalog metadata in `catalog`, prepared statement
//! handles in `handle`, the TLS connection type in `tls`.

mod catalog;
mod handle;
mod tls;

use std::pin::Pin;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
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
use datafusion::common::ScalarValue;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::Error;
use crate::auth::Credentials;
use crate::catalog::Catalog;
use crate::metrics::{QueryMetrics, outcome};
use handle::{Handle, params_ipc};

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
        one_batch(catalog::catalogs(self.catalog.context(), query))
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
        one_batch(catalog::schemas(self.catalog.context(), query))
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
        one_batch(catalog::tables(self.catalog.context(), query).await)
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
        one_batch(catalog::table_types(query))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&catalog::SQL_INFO).schema();
        self.command_info(request, &schema, &query)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        one_batch(query.into_builder(&catalog::SQL_INFO).build())
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
                Some((Ok::<_, std::io::Error>(tls::TlsConn(stream)), tls))
            });
            server.serve_with_incoming_shutdown(incoming, stop).await
        }
    };
    served.map_err(|e| Error::Serve(format!("flight sql (serve.flight_listen): {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
