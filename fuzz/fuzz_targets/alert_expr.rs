//! The compiler of user alert rules (`[[alerts.rules]] expr`): any text over the reading or the
//! window columns compiles or gets a refusal with a position; a compiled expression evaluates
//! against rows of any values without panicking.

#![no_main]

use std::borrow::Cow;

use fjord_core::config::{READING_COLUMNS, WINDOW_COLUMNS};
use fjord_core::expr::{Expr, Type, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let columns = if pick & 1 == 0 {
        READING_COLUMNS
    } else {
        WINDOW_COLUMNS
    };
    let Ok(expr) = Expr::compile(text, columns) else {
        return;
    };
    // rows: all NULL, then typed values picked from the first byte
    let _ = expr.holds(&|_| Value::Null);
    let row = |i: usize| match (columns[i].1, (usize::from(pick) + i) % 4) {
        (_, 0) => Value::Null,
        (Type::Bool, n) => Value::Bool(n == 1),
        (Type::Int, n) => Value::Int([i64::MIN, -1, i64::MAX][n - 1]),
        (Type::Float, n) => Value::Float([f64::NAN, -0.0, f64::INFINITY][n - 1]),
        (Type::Text, n) => Value::Text(Cow::Borrowed(["", "L1", "é\u{0}"][n - 1])),
    };
    let _ = expr.holds(&row);
});
