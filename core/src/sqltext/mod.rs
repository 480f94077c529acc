//! Checks of SQL text before it reaches the SQL parser, for what the parser cannot bound itself:
//! a parse with a step budget ([`check_parse_work`], [`fuel`]), and, with more specific
//! messages, the chains of names the fuzzer found first ([`check_name_chains`]).
//!
//! sqlparser (0.62, the version DataFusion 55 uses) backtracks over a chain of `.`-joined names:
//! after each `.` it tries to parse an expression and retries when that fails, so a chain that
//! fails at its end costs about twice as much per `.` — 24 dots cost seconds, 40 would cost days,
//! and a parse cannot be interrupted. Found by the `alert_expr` fuzz target; the same text reached
//! the query parser. Real names have a handful of parts (`catalog.schema.table.column`, a struct
//! field or two) and are written without space or operator after the dot, so both are bounded
//! before parsing: a chain's length (subscripts `[…]` are part of the chain), and the dots written
//! otherwise (where the parser backtracks).

pub mod fuel;

use sqlparser::dialect::{Dialect, GenericDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use self::fuel::Fuelled;

/// The parser a text is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    /// DataFusion's (`datafusion.sql_parser.dialect = "generic"`): HTTP, Flight SQL, alert rules.
    Generic,
    /// The Postgres wire's.
    Postgres,
}

/// Parses `sql` as statements with a step budget ([`fuel::allowance`]) and refuses it when the
/// parser would need more: text the parser backtracks over, whatever its pattern. A syntax error
/// is left to the real parse, which reports it properly.
pub fn check_parse_work(sql: &str, dialect: SqlDialect) -> Result<(), String> {
    fn exhausts<D: Dialect>(dialect: Fuelled<D>, sql: &str) -> bool {
        let _ = Parser::new(&dialect)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statements());
        dialect.exhausted()
    }
    let steps = fuel::allowance(sql);
    let exhausted = match dialect {
        SqlDialect::Generic => exhausts(Fuelled::new(GenericDialect {}, steps), sql),
        SqlDialect::Postgres => exhausts(Fuelled::new(PostgreSqlDialect {}, steps), sql),
    };
    if exhausted {
        Err(too_much_work(steps, sql.len()))
    } else {
        Ok(())
    }
}

/// The refusal of text that exhausted its parse steps.
pub fn too_much_work(steps: u64, bytes: usize) -> String {
    format!(
        "the SQL parser would need more than {steps} steps for these {bytes} bytes: text shaped \
         like this makes it backtrack; write it differently (shorter chains of `.`, `[`, `:` or \
         operators)"
    )
}

/// Most `.` in one chain of names (`a.b.c` has 2).
pub const MAX_NAME_CHAIN_DOTS: usize = 12;

/// Most `.` in one text (not only in a row) that are not written as in a name (`a.b`): with whitespace or an operator
/// after them, or a placeholder or whitespace before them. This is where the parser backtracks.
pub const MAX_LOOSE_DOTS: usize = 4;

/// Refuses text with a chain of more than `max_dots` `.`-joined parts (whitespace and comments
/// between them count as nothing, as for the parser), or with more than [`MAX_LOOSE_DOTS`] dots
/// not written as in a name. Text that does not tokenize is left to the parser, which reports it
/// properly.
pub fn check_name_chains(sql: &str, max_dots: usize) -> Result<(), String> {
    let dialect = GenericDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return Ok(());
    };
    let (mut dots, mut loose) = (0, 0);
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Whitespace(_) => {}
            Token::Period => {
                dots += 1;
                if dots > max_dots {
                    return Err(format!(
                        "a name with more than {max_dots} `.` in a row: no table, column or field \
                         is named that deep"
                    ));
                }
                let name_before = i > 0
                    && matches!(
                        tokens[i - 1],
                        Token::Word(_) | Token::RParen | Token::RBracket
                    );
                let name_after = matches!(tokens.get(i + 1), Some(Token::Word(_) | Token::Mul));
                if !(name_before && name_after) {
                    loose += 1;
                    if loose > MAX_LOOSE_DOTS {
                        return Err(format!(
                            "more than {MAX_LOOSE_DOTS} `.` not written as in a name \
                             (`table.column`: no space, operator or placeholder next to the dot)"
                        ));
                    }
                }
            }
            // a part of the chain: the dots around it keep counting. Subscripts too: after a
            // `.`, the parser tries the rest, `[…]` included, as one expression, so `a.b[c.d[…`
            // backtracks over the dots on both sides of each `[` (the fuzzer's third finding).
            Token::Word(_)
            | Token::Placeholder(_)
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::Mul
            | Token::LBracket
            | Token::RBracket => {}
            _ => dots = 0,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_names_pass() {
        for sql in [
            "SELECT t.a, fjord.public.lots.name, s.f.g.h FROM t",
            "SELECT 1.5 + 2.25, t.* FROM t",
            "SELECT a . b FROM t",
            "SELECT (t.s).f, a[1].b FROM t",
        ] {
            assert_eq!(check_name_chains(sql, MAX_NAME_CHAIN_DOTS), Ok(()), "{sql}");
        }
    }

    #[test]
    fn a_long_chain_is_refused_also_with_spaces_and_placeholders() {
        // what the fuzzer found: seconds of parsing for 80 bytes
        let found =
            "$0. o.e$0. $0. o. o.e. o. o.e$0. $0. o.e. o. o.e$0. $0. o. o.e$0. $0. o.e. o.~~,";
        let e = check_name_chains(found, MAX_NAME_CHAIN_DOTS).unwrap_err();
        assert!(e.contains("`.`"), "{e}");
        // and the variant the fuzzer found next: operators after the dots break up the chain
        let next = "$0. o.e$0. $0. o.e$0. o.ep. o.~apo.ep. o.~p. o. $0. o.e$0. o.ep. o.~apo.ep. \
                    o.~p. o.~ap\0$\0~,";
        assert!(check_name_chains(next, MAX_NAME_CHAIN_DOTS).is_err());
        let long = format!("SELECT {} FROM t", vec!["a"; 14].join("."));
        assert!(check_name_chains(&long, MAX_NAME_CHAIN_DOTS).is_err());
    }

    #[test]
    fn a_chain_through_unclosed_subscripts_is_refused() {
        // the fuzzer's third finding: 13 s of parsing for 115 bytes (instrumented)
        let found =
            include_bytes!("../../../fuzz/seeds/alert_expr/regression_backtracking_subscripts");
        // (an expression: as a query it is the select list)
        // (the fuzz input's first byte picks the columns; the text follows)
        let text = format!("SELECT {}", String::from_utf8_lossy(&found[1..]));
        assert!(check_name_chains(&text, MAX_NAME_CHAIN_DOTS).is_err());
        // real subscripts still pass
        let ok = "SELECT m['k'].a.b, a.b[c.d[1]].e, ARRAY[t.a, t.b][1] FROM t";
        assert_eq!(check_name_chains(ok, MAX_NAME_CHAIN_DOTS), Ok(()));
    }

    #[test]
    fn a_parse_that_backtracks_runs_out_of_steps_and_real_statements_do_not() {
        // the fuzzer's fourth finding: subscripts, slices and casts between dots (11 s under the
        // fuzzer for 164 bytes); the name-chain count alone lets it through
        let found = include_bytes!("../../../fuzz/seeds/alert_expr/regression_backtracking_slices");
        // (an expression: as a query it is the select list)
        // (the fuzz input's first byte picks the columns; the text follows)
        let text = format!("SELECT {}", String::from_utf8_lossy(&found[1..]));
        let t0 = std::time::Instant::now();
        // 2.9 million steps with the generic dialect (about 1 s in a debug build, more with
        // longer text); the PostgreSQL dialect reads `[a:b]` differently and fails after 2,644
        let e = check_parse_work(&text, SqlDialect::Generic).unwrap_err();
        assert!(e.contains("backtrack"), "{e}");
        assert_eq!(check_parse_work(&text, SqlDialect::Postgres), Ok(()));
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t0.elapsed()
        );
        // the earlier findings run out of steps too, without the name-chain rules
        let earlier: [&[u8]; 2] = [
            include_bytes!("../../../fuzz/seeds/alert_expr/regression_backtracking_subscripts"),
            include_bytes!("../../../fuzz/seeds/alert_expr/regression_backtracking_name_chain"),
        ];
        for bytes in earlier {
            let text = format!("SELECT {}", String::from_utf8_lossy(&bytes[1..]));
            assert!(
                check_parse_work(&text, SqlDialect::Generic).is_err(),
                "{text}"
            );
        }
        // large but ordinary statements stay far inside the allowance (a sum takes 2 steps per
        // byte)
        let sum = format!("SELECT 1{}", "+1".repeat(20_000));
        let wide = format!(
            "SELECT {} FROM t JOIN u ON t.a = u.a WHERE t.x IN ({}) AND u.m['k'][1] > 2::int",
            (0..2000)
                .map(|i| format!("t.c{i} AS a{i}"))
                .collect::<Vec<_>>()
                .join(", "),
            (0..2000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let nested = format!("SELECT {}1{}", "(SELECT ".repeat(20), ")".repeat(20));
        for sql in [
            sum.as_str(),
            wide.as_str(),
            nested.as_str(),
            "SELEKT nonsense ((",
        ] {
            assert_eq!(check_parse_work(sql, SqlDialect::Generic), Ok(()));
            assert_eq!(check_parse_work(sql, SqlDialect::Postgres), Ok(()));
        }
    }

    #[test]
    fn the_fuelled_dialect_parses_like_the_one_it_wraps() {
        let samples = [
            "SELECT lot_id, count(*) FILTER (WHERE occupied) FROM readings GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
            "WITH w AS (SELECT * FROM occupancy_1m) SELECT a.b[1].c, m['k'], x::text, y ILIKE 'a%' FROM w",
            "SELECT * EXCLUDE (a) FROM t QUALIFY row_number() OVER (PARTITION BY a ORDER BY b) = 1",
            "SELECT $1, E'\\n', 'a' || 'b', date_trunc('hour', ts) AT TIME ZONE 'UTC' FROM t",
        ];
        for sql in samples {
            let plain = Parser::parse_sql(&GenericDialect {}, sql).map(|s| format!("{s:?}"));
            let fuelled = Parser::parse_sql(&Fuelled::new(GenericDialect {}, 1 << 20), sql)
                .map(|s| format!("{s:?}"));
            assert_eq!(plain.as_ref().ok(), fuelled.as_ref().ok(), "{sql}");
            let plain = Parser::parse_sql(&PostgreSqlDialect {}, sql).map(|s| format!("{s:?}"));
            let fuelled = Parser::parse_sql(&Fuelled::new(PostgreSqlDialect {}, 1 << 20), sql)
                .map(|s| format!("{s:?}"));
            assert_eq!(plain.as_ref().ok(), fuelled.as_ref().ok(), "{sql}");
        }
    }

    #[test]
    fn separate_chains_count_separately() {
        let many = vec!["a.b.c.d"; 20].join(", ");
        assert_eq!(
            check_name_chains(&format!("SELECT {many} FROM t"), MAX_NAME_CHAIN_DOTS),
            Ok(())
        );
    }
}
