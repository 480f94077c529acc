//! The Postgres wire protocol (docs/contract.md §7) over the shared catalog, with `datafusion-postgres`
//! (simple and extended query protocol, `pg_catalog` for `psql`'s `\d` and `\dt`, Grafana, DBeaver).
//!
//! fjord adds what a shared, read-only server needs:
//! * SCRAM-SHA-256 authentication: user `fjord`, password the token (which never crosses the
//!   wire); with `[tls]` TLS is required (`sslmode=verify-full`);
//! * [`ReadOnly`], a hook that runs first and refuses every statement but queries, `EXPLAIN`,
//!   `SHOW`, transaction control and the `SET`s of client settings that drivers send (never a
//!   DataFusion setting: the session is shared). SQL-level `PREPARE`/`EXECUTE`/`DEALLOCATE` are
//!   refused: DataFusion keeps them in the session every connection shares, and plans a
//!   `PREPARE` without its analyzer rules (so without the function caps of [`crate::capped`]).
//!   Drivers' prepared statements (Parse/Bind) work and belong to their connection, and a
//!   `DEALLOCATE` (what psycopg sends to drop one of them) acts on the connection's own;
//! * the time, row and byte limits, applied to the row stream of every result (produced on the
//!   query threads, so the time limit holds while a client does not read), and the memory limit's
//!   error named — each ends only that query;
//! * every connection served on the query threads ([`crate::runtime`]).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::{Sink, StreamExt};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use tokio::time::Instant;

use crate::auth::{Credentials, USER};
use crate::catalog::Catalog;
use crate::limits::Limits;
use crate::metrics::{QueryMetrics, outcome};
use crate::{Error, Result};

/// Client settings a driver may `SET` (kept per connection by `datafusion-postgres`).
const CLIENT_SETTINGS: [&str; 9] = [
    "statement_timeout",
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
    "client_encoding",
    "client_min_messages",
];

fn pg_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

/// The SQLSTATE and message of a fjord error.
fn to_pg(e: &Error) -> PgWireError {
    let code = match e {
        Error::Refused(_) => "42501", // insufficient_privilege
        Error::Limit(m) if m.contains("memory") => "53200", // out_of_memory
        Error::Limit(m) if m.contains("time limit") => "57014", // query_canceled
        Error::Limit(_) => "54000",   // program_limit_exceeded
        _ => "XX000",
    };
    pg_error(code, e.to_string())
}

/// Why SQL-level prepared statements are refused (see the module docs).
const SQL_PREPARE_REFUSED: &str = "SQL-level PREPARE and EXECUTE are not available \
     (the session is shared by every connection): use your driver's prepared statements \
     (the extended protocol's Parse/Bind, e.g. psycopg's prepare=True or JDBC's \
     PreparedStatement), which belong to their connection";

/// Refuses every statement that is not read-only, or larger than the limits of
/// [`crate::guard::Shape`] (runs before the other hooks).
#[derive(Debug)]
pub struct ReadOnly {
    /// How large a statement may be.
    pub shape: crate::guard::Shape,
}

impl ReadOnly {
    /// `Ok` when `statement` may run on the Postgres interface.
    pub fn check(&self, statement: &Statement) -> Result<()> {
        match statement {
            // a query (`SELECT … INTO` is not one), also explained or prepared
            Statement::Query(_) => crate::guard::check_statement(statement, &self.shape),
            Statement::Explain { statement: q, .. }
                if matches!(q.as_ref(), Statement::Query(_)) =>
            {
                crate::guard::check_statement(q, &self.shape)
            }
            Statement::ShowVariable { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Set(Set::SetTimeZone { .. }) => self.shape.check_depth(statement),
            Statement::Set(Set::SingleAssignment { variable, .. }) => {
                let name = variable.to_string().to_lowercase();
                if !CLIENT_SETTINGS.contains(&name.as_str()) {
                    return Err(Error::Refused(format!(
                        "SET {name} is not allowed: only client settings ({}) may be set",
                        CLIENT_SETTINGS.join(", ")
                    )));
                }
                self.shape.check_depth(statement)
            }
            Statement::Prepare { .. }
            | Statement::Execute { .. }
            | Statement::Deallocate { .. } => Err(Error::Refused(SQL_PREPARE_REFUSED.into())),
            // refused by name
            _ => crate::guard::check_statement(statement, &self.shape),
        }
    }
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // Drivers send `DEALLOCATE name` (psycopg evicting a statement it prepared with Parse,
        // `DEALLOCATE ALL` clearing its cache) for their protocol-level statements: those are the
        // connection's own, so it is answered on them.
        if let Statement::Deallocate { name, .. } = statement {
            let key = match name.quote_style {
                Some(_) => name.value.clone(),
                None => name.value.to_lowercase(),
            };
            // `ALL`: the store cannot list its statements; they end with the connection
            if name.quote_style.is_some() || key != "all" {
                client.portal_store().rm_statement(&key);
            }
            return Some(Ok(Response::Execution(Tag::new("DEALLOCATE"))));
        }
        self.check(statement).err().map(|e| Err(to_pg(&e)))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        self.check(statement).err().map(|e| Err(to_pg(&e)))
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}

/// SCRAM iterations (the RFC's minimum; the token is long and random, not a human password).
const SCRAM_ITERATIONS: usize = 4096;

/// User `fjord` with the token as password, for SCRAM-SHA-256: the salted password of the token,
/// salted once per server start.
#[derive(Debug)]
struct TokenAuth {
    salt: [u8; 16],
    salted: Vec<u8>,
}

impl TokenAuth {
    fn new(credentials: &Credentials) -> Self {
        let salt: [u8; 16] = rand::random();
        let salted = pgwire::api::auth::sasl::scram::gen_salted_password(
            credentials.token(),
            &salt,
            SCRAM_ITERATIONS,
        );
        Self { salt, salted }
    }
}

#[async_trait]
impl AuthSource for TokenAuth {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        match login.user() {
            Some(USER) => Ok(Password::new(Some(self.salt.to_vec()), self.salted.clone())),
            other => Err(PgWireError::InvalidPassword(
                other.unwrap_or_default().to_owned(),
            )),
        }
    }
}

/// One connection's startup: SCRAM-SHA-256 (the password never crosses the wire), and with
/// `[tls]` a refusal of connections that did not start TLS.
struct Startup {
    inner: SASLAuthStartupHandler<DefaultServerParameterProvider>,
    require_tls: bool,
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if self.require_tls && !client.is_secure() {
            return Err(pg_error(
                "28000",
                "this server requires TLS: connect with sslmode=verify-full (or require)".into(),
            ));
        }
        self.inner.on_startup(client, message).await
    }
}

/// The query handlers: `datafusion-postgres`'s, with the limits on every result.
struct Handlers {
    inner: Arc<DfSessionService>,
    limits: Limits,
    runtime: Arc<crate::runtime::QueryRuntime>,
    metrics: QueryMetrics,
    auth: Arc<TokenAuth>,
    require_tls: bool,
}

impl Handlers {
    /// `run` (planning and starting a statement) within the deadline; failures counted.
    async fn planned<T>(
        &self,
        run: impl std::future::Future<Output = PgWireResult<T>>,
        started: Instant,
        deadline: Instant,
    ) -> PgWireResult<T> {
        let result = match tokio::time::timeout_at(deadline, run).await {
            Err(_) => Err(to_pg(&self.limits.time_error())),
            Ok(r) => r,
        };
        if result.is_err() {
            self.metrics
                .observe("pg", "error", started.elapsed().as_secs_f64());
        }
        result
    }

    /// `response` with its rows cut at the deadline and the row limit.
    fn limited(&self, response: Response, deadline: Instant, started: Instant) -> Response {
        let Response::Query(q) = response else {
            self.metrics
                .observe("pg", "ok", started.elapsed().as_secs_f64());
            return response;
        };
        let limits = self.limits;
        let metrics = self.metrics.clone();
        let tag = q.command_tag().to_owned();
        let schema = q.row_schema.clone();
        let rows = futures::stream::unfold(
            (q.data_rows, 0u64, 0u64, false),
            move |(mut rows, n, bytes, done)| {
                let metrics = metrics.clone();
                async move {
                    if done {
                        return None;
                    }
                    let failed = |e: Error| {
                        metrics.observe("pg", outcome(Some(&e)), started.elapsed().as_secs_f64());
                        Some((Err(to_pg(&e)), (rows_placeholder(), n, bytes, true)))
                    };
                    match tokio::time::timeout_at(deadline, rows.next()).await {
                        Err(_) => failed(limits.time_error()),
                        Ok(None) => {
                            metrics.observe("pg", "ok", started.elapsed().as_secs_f64());
                            None
                        }
                        Ok(Some(Err(e))) => failed(limits.error_text(&e.to_string())),
                        Ok(Some(Ok(row))) if n >= limits.max_rows => {
                            drop(row);
                            failed(limits.rows_error())
                        }
                        Ok(Some(Ok(row)))
                            if bytes + row.data.len() as u64 > limits.max_result_bytes =>
                        {
                            drop(row);
                            failed(limits.bytes_error())
                        }
                        Ok(Some(Ok(row))) => {
                            let size = row.data.len() as u64;
                            Some((Ok(row), (rows, n + 1, bytes + size, false)))
                        }
                    }
                }
            },
        );
        // produced on the query threads, so that a client that stops reading does not keep the
        // query (and its memory) past the deadline
        let late_metrics = self.metrics.clone();
        let rows = self.runtime.pump_items(
            Box::pin(rows),
            deadline,
            Result::is_err,
            move || {
                let e = limits.time_error();
                late_metrics.observe("pg", outcome(Some(&e)), started.elapsed().as_secs_f64());
                Err(to_pg(&e))
            },
            || {
                Err(pg_error(
                    "XX000",
                    "the query stopped before the end of its result (an internal error); \
                         what was sent is incomplete"
                        .into(),
                ))
            },
        );
        let mut out = QueryResponse::new(schema, rows);
        out.set_command_tag(&tag);
        Response::Query(out)
    }
}

/// An empty row stream, left behind once a result has failed.
fn rows_placeholder() -> pgwire::api::results::SendableRowStream {
    Box::pin(futures::stream::empty())
}

#[async_trait]
impl SimpleQueryHandler for Handlers {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let started = Instant::now();
        let deadline = started + self.limits.timeout;
        if let Err(e) = self
            .limits
            .sql
            .check_text(query, fjord_core::sqltext::SqlDialect::Postgres)
        {
            self.metrics
                .observe("pg", outcome(Some(&e)), started.elapsed().as_secs_f64());
            return Err(to_pg(&e));
        }
        let run = SimpleQueryHandler::do_query(self.inner.as_ref(), client, query);
        let responses = self.planned(run, started, deadline).await?;
        Ok(responses
            .into_iter()
            .map(|r| self.limited(r, deadline, started))
            .collect())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handlers {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = BoundedParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(BoundedParser {
            inner: self.inner.query_parser(),
            shape: self.limits.sql,
        })
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let started = Instant::now();
        let deadline = started + self.limits.timeout;
        let run = ExtendedQueryHandler::do_query(self.inner.as_ref(), client, portal, max_rows);
        let response = self.planned(run, started, deadline).await?;
        Ok(self.limited(response, deadline, started))
    }
}

type DfParser = <DfSessionService as ExtendedQueryHandler>::QueryParser;

/// `datafusion-postgres`'s parser for the extended protocol (Parse messages), with the SQL text
/// limit checked before anything parses the text (the simple protocol checks it in `do_query`).
struct BoundedParser {
    inner: Arc<DfParser>,
    shape: crate::guard::Shape,
}

#[async_trait]
impl pgwire::api::stmt::QueryParser for BoundedParser {
    type Statement = <DfParser as pgwire::api::stmt::QueryParser>::Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<pgwire::api::Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if let Err(e) = self
            .shape
            .check_text(sql, fjord_core::sqltext::SqlDialect::Postgres)
        {
            return Err(to_pg(&e));
        }
        self.inner.parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<pgwire::api::Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&pgwire::api::portal::Format>,
    ) -> PgWireResult<Vec<pgwire::api::results::FieldInfo>> {
        self.inner.get_result_schema(stmt, column_format)
    }
}

/// The handler set of one connection.
struct Factory {
    handlers: Arc<Handlers>,
}

impl PgWireServerHandlers for Factory {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handlers.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handlers.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        // one per connection: the SASL exchange keeps its state in the handler
        let scram = ScramAuth::new(self.handlers.auth.clone());
        Arc::new(Startup {
            inner: SASLAuthStartupHandler::new(Arc::new(DefaultServerParameterProvider::default()))
                .with_scram(scram),
            require_tls: self.handlers.require_tls,
        })
    }
}

/// Serves the Postgres wire protocol on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    catalog: Catalog,
    credentials: Credentials,
    metrics: QueryMetrics,
    tls: Option<Arc<fjord_core::tls::ServerConfig>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let ctx = Arc::new(catalog.context().clone());
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(ReadOnly {
            shape: catalog.limits().sql,
        }),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    let handlers = Arc::new(Handlers {
        inner: Arc::new(DfSessionService::new_with_hooks(ctx, hooks)),
        limits: catalog.limits(),
        runtime: catalog.runtime().clone(),
        metrics,
        auth: Arc::new(TokenAuth::new(&credentials)),
        require_tls: tls.is_some(),
    });
    let acceptor = tls.map(fjord_core::tls::TlsAcceptor::from);
    let runtime = handlers.runtime.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "postgres wire: accept failed");
                continue;
            }
        };
        let factory = Arc::new(Factory {
            handlers: handlers.clone(),
        });
        let acceptor = acceptor.clone();
        // parsing, planning and executing happen in the connection's task: on the query threads
        runtime.handle().spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, acceptor, factory).await {
                tracing::debug!(%peer, error = %e, "postgres connection ended with an error");
            }
        });
    }
}
