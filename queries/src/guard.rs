//! Read-only SQL (docs/contract.md §7): a statement runs only if it is a query (`SELECT`, `WITH`, `VALUES`,
//! set operations) or `EXPLAIN` of one. Everything else — DDL, DML, `COPY … TO`,
//! `CREATE EXTERNAL TABLE`, `SET`, transactions — is refused with a message that names it.
//! Exactly one statement per request, and `SELECT … INTO` (which creates a table) is refused too.
//!
//! The statement's size is bounded before anything else looks at it: its text
//! (`serve.max_sql_bytes`) and the nesting of its expressions and subqueries
//! (`serve.max_sql_depth`), so that planning, which recurses over the expression tree, always fits
//! the query threads' stack ([`crate::runtime`]).

use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, Statement, Visit, Visitor};

use crate::{Error, Result};

/// How large a statement may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Longest SQL text, in bytes (`serve.max_sql_bytes`).
    pub max_bytes: usize,
    /// Deepest nesting of expressions and subqueries (`serve.max_sql_depth`).
    pub max_depth: usize,
}

impl Shape {
    /// Refuses text longer than the limit, or that the parser of `dialect` would backtrack over
    /// for too long (a chain of names; any text whose parse exceeds its step budget).
    pub fn check_text(&self, sql: &str, dialect: fjord_core::sqltext::SqlDialect) -> Result<()> {
        if sql.len() > self.max_bytes {
            return Err(Error::Limit(format!(
                "the SQL text is {} bytes, more than the limit of {} bytes (serve.max_sql_bytes)",
                sql.len(),
                self.max_bytes
            )));
        }
        fjord_core::sqltext::check_name_chains(sql, fjord_core::sqltext::MAX_NAME_CHAIN_DOTS)
            .map_err(Error::Limit)?;
        fjord_core::sqltext::check_parse_work(sql, dialect).map_err(Error::Limit)
    }

    /// Refuses a statement nested deeper than the limit, or with more tables (and joins) plus set
    /// operations (`UNION`, …) than it: each of those becomes a level of the plan, which planning
    /// recurses over too. One walk counts both and stops at the limit, so it never goes deeper
    /// itself.
    pub fn check_depth(&self, statement: &Statement) -> Result<()> {
        struct Walk {
            depth: usize,
            breadth: usize,
            max: usize,
        }
        impl Walk {
            fn enter(&mut self) -> ControlFlow<bool> {
                self.depth += 1;
                if self.depth > self.max {
                    ControlFlow::Break(true)
                } else {
                    ControlFlow::Continue(())
                }
            }
            fn widen(&mut self, by: usize) -> ControlFlow<bool> {
                self.breadth += by;
                if self.breadth > self.max {
                    ControlFlow::Break(false)
                } else {
                    ControlFlow::Continue(())
                }
            }
        }
        impl Visitor for Walk {
            /// `true`: too deep; `false`: too broad.
            type Break = bool;
            fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<bool> {
                self.enter()
            }
            fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<bool> {
                self.depth -= 1;
                ControlFlow::Continue(())
            }
            fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<bool> {
                self.enter()?;
                // set operations, counted without recursion (a UNION chain is a deep tree)
                let mut stack = vec![q.body.as_ref()];
                while let Some(b) = stack.pop() {
                    if let SetExpr::SetOperation { left, right, .. } = b {
                        self.widen(1)?;
                        stack.push(left);
                        stack.push(right);
                    }
                }
                ControlFlow::Continue(())
            }
            fn post_visit_query(&mut self, _: &Query) -> ControlFlow<bool> {
                self.depth -= 1;
                ControlFlow::Continue(())
            }
            fn pre_visit_table_factor(
                &mut self,
                _: &datafusion::sql::sqlparser::ast::TableFactor,
            ) -> ControlFlow<bool> {
                self.widen(1)
            }
        }
        let mut walk = Walk {
            depth: 0,
            breadth: 0,
            max: self.max_depth,
        };
        match statement.visit(&mut walk) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(true) => Err(Error::Limit(format!(
                "the statement nests expressions or subqueries deeper than the limit of {} levels (serve.max_sql_depth)",
                self.max_depth
            ))),
            ControlFlow::Break(false) => Err(Error::Limit(format!(
                "the statement has more tables and set operations (UNION, …) than the limit of {} (serve.max_sql_depth)",
                self.max_depth
            ))),
        }
    }
}

/// Checks `sql`; returns it unchanged when it may run.
pub fn check<'a>(sql: &'a str, shape: &Shape) -> Result<&'a str> {
    shape.check_text(sql, fjord_core::sqltext::SqlDialect::Generic)?;
    let statements =
        DFParser::parse_sql(sql).map_err(|e| Error::Query(format!("SQL syntax: {e}")))?;
    let mut iter = statements.iter();
    let (Some(first), None) = (iter.next(), iter.next()) else {
        return Err(Error::Refused(format!(
            "send exactly one statement, got {}",
            statements.len()
        )));
    };
    allowed(first, shape)?;
    Ok(sql)
}

/// Checks one parsed SQL statement (the Postgres interface parses with its own dialect).
pub fn check_statement(statement: &Statement, shape: &Shape) -> Result<()> {
    shape.check_depth(statement)?;
    read_only(statement)
}

fn read_only(statement: &Statement) -> Result<()> {
    match statement {
        Statement::Query(q) if creates_table(q) => Err(Error::Refused(
            "fjord SQL is read-only; SELECT … INTO is not allowed".into(),
        )),
        Statement::Query(_) => Ok(()),
        Statement::Explain { statement, .. } => read_only(statement),
        other => Err(Error::Refused(format!(
            "fjord SQL is read-only; {} is not allowed",
            kind(&other.to_string())
        ))),
    }
}

/// True when a `SELECT … INTO` is anywhere in the query's set operations.
fn creates_table(q: &Query) -> bool {
    fn body(b: &SetExpr) -> bool {
        match b {
            SetExpr::Select(s) => s.into.is_some(),
            SetExpr::Query(q) => creates_table(q),
            SetExpr::SetOperation { left, right, .. } => body(left) || body(right),
            _ => false,
        }
    }
    body(&q.body)
}

fn allowed(statement: &DfStatement, shape: &Shape) -> Result<()> {
    match statement {
        DfStatement::Statement(s) => check_statement(s, shape),
        // EXPLAIN [ANALYZE] of a query is a query
        DfStatement::Explain(e) => allowed(&e.statement, shape),
        DfStatement::CopyTo(_) => Err(Error::Refused(
            "fjord SQL is read-only; COPY … TO is not allowed".into(),
        )),
        DfStatement::CreateExternalTable(_) => Err(Error::Refused(
            "fjord SQL is read-only; CREATE EXTERNAL TABLE is not allowed".into(),
        )),
        other => Err(Error::Refused(format!(
            "fjord SQL is read-only; {} is not allowed",
            kind(&other.to_string())
        ))),
    }
}

/// The first words of a statement, as its kind (`DROP TABLE`, `INSERT INTO`).
fn kind(text: &str) -> String {
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        max_bytes: 64 * 1024,
        max_depth: 1024,
    };

    fn check(sql: &str) -> Result<&str> {
        super::check(sql, &SHAPE)
    }

    #[test]
    fn text_and_nesting_are_bounded_by_their_limits() {
        let sum = |n: usize| format!("SELECT 1{}", "+1".repeat(n - 1));
        assert!(check(&sum(1_000)).is_ok());
        let e = check(&sum(2_000)).unwrap_err().to_string();
        assert!(
            e.contains("deeper than the limit of 1024 levels (serve.max_sql_depth)"),
            "{e}"
        );
        // subqueries count as levels too (the parser itself stops at 50 nested parentheses)
        let nested = format!("SELECT {}1{}", "(SELECT ".repeat(10), ")".repeat(10));
        let tight = Shape {
            max_bytes: 1 << 20,
            max_depth: 8,
        };
        let e = super::check(&nested, &tight)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains("serve.max_sql_depth"), "{e}");
        assert!(check(&nested).is_ok());
        // a long UNION chain or many tables: as many plan levels
        let unions = vec!["SELECT 1"; 1100].join(" UNION ALL ");
        let e = check(&unions).unwrap_err().to_string();
        assert!(
            e.contains("set operations") && e.contains("serve.max_sql_depth"),
            "{e}"
        );
        assert!(check(&vec!["SELECT 1"; 100].join(" UNION ALL ")).is_ok());
        let e = check(&sum(40_000)).unwrap_err().to_string();
        assert!(
            e.contains("more than the limit of 65536 bytes (serve.max_sql_bytes)"),
            "{e}"
        );
    }

    #[test]
    fn select_into_is_refused() {
        for sql in [
            "SELECT * INTO t FROM lots",
            "WITH x AS (SELECT 1 AS a) SELECT a INTO t FROM x",
        ] {
            let e = check(sql).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains("read-only") && e.contains("INTO"), "{sql}: {e}");
        }
    }

    #[test]
    fn queries_pass() {
        for sql in [
            "SELECT 1",
            "select lot_id, count(*) from readings group by 1",
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
            "SELECT 1 UNION ALL SELECT 2",
            "EXPLAIN SELECT * FROM readings",
        ] {
            assert!(check(sql).is_ok(), "{sql}: {:?}", check(sql));
        }
    }

    #[test]
    fn everything_else_is_refused_by_name() {
        for (sql, name) in [
            ("DROP TABLE readings", "DROP TABLE"),
            ("INSERT INTO readings VALUES (1)", "INSERT INTO"),
            ("DELETE FROM readings", "DELETE FROM"),
            ("UPDATE readings SET occupied = true", "UPDATE READINGS"),
            ("CREATE TABLE t (a INT)", "CREATE TABLE"),
            ("COPY readings TO '/tmp/x.csv'", "COPY … TO"),
            (
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("EXPLAIN DROP TABLE readings", "DROP TABLE"),
        ] {
            let e = check(sql).unwrap_err().to_string();
            assert!(e.contains("read-only") && e.contains(name), "{sql}: {e}");
        }
        let e = check("SELECT 1; SELECT 2").unwrap_err().to_string();
        assert!(e.contains("exactly one statement"), "{e}");
        let e = check("SELEC 1").unwrap_err().to_string();
        assert!(e.starts_with("SQL syntax"), "{e}");
    }
}
