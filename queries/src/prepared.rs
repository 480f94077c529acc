//! SQL-level prepared statements on the Postgres wire (`PREPARE name AS …`, `EXECUTE name(…)`,
//! `DEALLOCATE name`), kept per connection.
//!
//! DataFusion keeps them in the session, which every connection shares: left alone, one
//! connection could `EXECUTE` or `DEALLOCATE` another's, and names would pile up forever. So
//! before DataFusion sees the text, each name gets its connection's suffix (`by_lot` of
//! connection 7 is `"by_lot@7"`), a connection holds at most [`MAX_PER_CONNECTION`], and what
//! a connection prepared is dropped when it closes ([`Scopes::take`]). Protocol-level prepared
//! statements (Parse/Bind, what drivers use) are per connection in `pgwire` already.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use datafusion::sql::sqlparser::ast::{Ident, ObjectNamePart, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::{Error, Result};

/// Most SQL-level prepared statements one connection may hold.
pub const MAX_PER_CONNECTION: usize = 256;

/// What a text does to its connection's prepared statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `PREPARE` of this (scoped) name.
    Prepare(String),
    /// `DEALLOCATE` of this (scoped) name.
    Deallocate(String),
}

/// `sql` with the names of its `PREPARE`, `EXECUTE` and `DEALLOCATE` statements made those of
/// connection `conn`, and what it prepares and deallocates. `None` when it has none of these
/// statements, or does not parse (DataFusion then reports the error on the text as sent).
pub fn scoped(sql: &str, conn: u64) -> Option<(String, Vec<Change>)> {
    let lower = sql.to_ascii_lowercase();
    if !["prepare", "execute", "deallocate"]
        .iter()
        .any(|k| lower.contains(k))
    {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let mut changes = Vec::new();
    let mut renamed = false;
    for s in &mut statements {
        match s {
            Statement::Prepare { name, .. } => {
                *name = scoped_ident(name, conn);
                changes.push(Change::Prepare(name.value.clone()));
                renamed = true;
            }
            Statement::Deallocate { name, .. } => {
                *name = scoped_ident(name, conn);
                changes.push(Change::Deallocate(name.value.clone()));
                renamed = true;
            }
            Statement::Execute { name: Some(n), .. } => {
                if let [ObjectNamePart::Identifier(i)] = n.0.as_mut_slice() {
                    *i = scoped_ident(i, conn);
                    renamed = true;
                }
            }
            _ => {}
        }
    }
    if !renamed {
        return None;
    }
    let text = statements
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    Some((text, changes))
}

/// The name as Postgres folds it (unquoted names are lower case), with the connection's suffix,
/// quoted so that DataFusion keeps it as it is.
fn scoped_ident(i: &Ident, conn: u64) -> Ident {
    let base = match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    };
    Ident::with_quote('"', format!("{base}@{conn}"))
}

/// The scoped names each open connection has prepared.
#[derive(Debug, Default)]
pub struct Scopes {
    names: Mutex<HashMap<u64, HashSet<String>>>,
}

impl Scopes {
    /// Records what connection `conn` is about to prepare and deallocate; refused when it would
    /// then hold more than [`MAX_PER_CONNECTION`].
    pub fn apply(&self, conn: u64, changes: &[Change]) -> Result<()> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let held = names.entry(conn).or_default();
        let mut after = held.clone();
        for c in changes {
            match c {
                Change::Prepare(n) => after.insert(n.clone()),
                Change::Deallocate(n) => after.remove(n),
            };
        }
        if after.len() > MAX_PER_CONNECTION {
            return Err(Error::Limit(format!(
                "a connection may hold at most {MAX_PER_CONNECTION} prepared statements: DEALLOCATE some first"
            )));
        }
        *held = after;
        Ok(())
    }

    /// The names connection `conn` prepared, forgotten (it has closed).
    pub fn take(&self, conn: u64) -> Vec<String> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names
            .remove(&conn)
            .unwrap_or_default()
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_their_connections_suffix_and_other_text_is_left_alone() {
        assert_eq!(scoped("SELECT 1", 7), None);
        assert_eq!(scoped("SELECT 'prepare' AS x", 7), None);
        let (text, changes) = scoped(
            "PREPARE By_Lot(text) AS SELECT * FROM lots WHERE lot_id = $1",
            7,
        )
        .unwrap();
        assert_eq!(
            text,
            "PREPARE \"by_lot@7\" (TEXT) AS SELECT * FROM lots WHERE lot_id = $1"
        );
        assert_eq!(changes, vec![Change::Prepare("by_lot@7".into())]);
        let (text, changes) = scoped("EXECUTE by_lot('central')", 7).unwrap();
        assert_eq!(text, "EXECUTE \"by_lot@7\"('central')");
        assert!(changes.is_empty());
        let (text, changes) = scoped("DEALLOCATE \"Q\"; EXECUTE q", 8).unwrap();
        assert_eq!(text, "DEALLOCATE \"Q@8\"; EXECUTE \"q@8\"");
        assert_eq!(changes, vec![Change::Deallocate("Q@8".into())]);
    }

    #[test]
    fn a_connection_holds_a_bounded_number_and_gives_them_up_when_it_closes() {
        let scopes = Scopes::default();
        for i in 0..MAX_PER_CONNECTION {
            scopes
                .apply(1, &[Change::Prepare(format!("p{i}@1"))])
                .unwrap();
        }
        let e = scopes
            .apply(1, &[Change::Prepare("one-more@1".into())])
            .unwrap_err();
        assert!(e.to_string().contains("at most 256"), "{e}");
        // replacing one is fine, and another connection has its own room
        scopes
            .apply(
                1,
                &[
                    Change::Deallocate("p0@1".into()),
                    Change::Prepare("one-more@1".into()),
                ],
            )
            .unwrap();
        scopes.apply(2, &[Change::Prepare("p@2".into())]).unwrap();
        assert_eq!(scopes.take(1).len(), MAX_PER_CONNECTION);
        assert!(scopes.take(1).is_empty());
        assert_eq!(scopes.take(2), vec!["p@2".to_owned()]);
    }
}
