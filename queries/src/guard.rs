//! Read-only SQL (SPEC §7): a statement runs only if it is a query (`SELECT`, `WITH`, `VALUES`,
//! set operations) or `EXPLAIN` of one. Everything else — DDL, DML, `COPY … TO`,
//! `CREATE EXTERNAL TABLE`, `SET`, transactions — is refused with a message that names it.
//! Exactly one statement per request.

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;

use crate::{Error, Result};

/// Checks `sql`; returns it unchanged when it may run.
pub fn check(sql: &str) -> Result<&str> {
    let statements =
        DFParser::parse_sql(sql).map_err(|e| Error::Query(format!("SQL syntax: {e}")))?;
    let mut iter = statements.iter();
    let (Some(first), None) = (iter.next(), iter.next()) else {
        return Err(Error::Refused(format!(
            "send exactly one statement, got {}",
            statements.len()
        )));
    };
    allowed(first)?;
    Ok(sql)
}

/// Checks one parsed SQL statement (the Postgres interface parses with its own dialect).
pub fn check_statement(statement: &Statement) -> Result<()> {
    match statement {
        Statement::Query(_) => Ok(()),
        Statement::Explain { statement, .. } => check_statement(statement),
        other => Err(Error::Refused(format!(
            "fjord SQL is read-only; {} is not allowed",
            kind(&other.to_string())
        ))),
    }
}

fn allowed(statement: &DfStatement) -> Result<()> {
    match statement {
        DfStatement::Statement(s) => check_statement(s),
        // EXPLAIN [ANALYZE] of a query is a query
        DfStatement::Explain(e) => allowed(&e.statement),
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
