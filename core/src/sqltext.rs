//! Checks of SQL text before it reaches the SQL parser, for what the parser cannot bound itself.
//!
//! sqlparser (0.62, the version DataFusion 55 uses) backtracks over a chain of `.`-joined names:
//! after each `.` it tries to parse an expression and retries when that fails, so a chain that
//! fails at its end costs about twice as much per `.` — 24 dots cost seconds, 40 would cost days,
//! and a parse cannot be interrupted. Found by the `alert_expr` fuzz target; the same text reached
//! the query parser. Real names have a handful of parts (`catalog.schema.table.column`, a struct
//! field or two) and are written without space or operator after the dot, so both are bounded
//! before parsing: a chain's length (subscripts `[…]` are part of the chain), and the dots written
//! otherwise (where the parser backtracks).

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

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
            include_bytes!("../../fuzz/seeds/alert_expr/regression_backtracking_subscripts");
        let text = String::from_utf8_lossy(found);
        assert!(check_name_chains(&text, MAX_NAME_CHAIN_DOTS).is_err());
        // real subscripts still pass
        let ok = "SELECT m['k'].a.b, a.b[c.d[1]].e, ARRAY[t.a, t.b][1] FROM t";
        assert_eq!(check_name_chains(ok, MAX_NAME_CHAIN_DOTS), Ok(()));
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
