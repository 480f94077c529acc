//! The boolean expressions of user alert rules (docs/contract.md §5): a small, strict subset of SQL, parsed
//! with `sqlparser` (the parser DataFusion uses, so the syntax is the one analysts type into the
//! SQL console) and evaluated by a tree walker over one row at a time, without allocation for
//! comparisons and arithmetic.
//!
//! Supported: column names, numbers, `'strings'`, `TRUE`/`FALSE`/`NULL`, `+ - * / %`,
//! `= <> != < <= > >=`, `AND OR NOT`, `IS [NOT] NULL`, `IS [NOT] TRUE/FALSE`, `[NOT] IN (…)`,
//! `[NOT] BETWEEN … AND …`, `[NOT] LIKE` / `ILIKE` with `%` and `_`, parentheses. SQL's
//! three-valued logic applies; a rule whose expression is NULL does not hold.
//!
//! Every error names its position (line and column, 1-based) in the expression.

use std::fmt;

use sqlparser::ast::{self, BinaryOperator, Spanned, UnaryOperator};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token};

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `true`/`false`.
    Bool,
    /// A 64-bit integer.
    Int,
    /// A double.
    Float,
    /// Text.
    Text,
}

/// A value of a row, or of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// Text.
    Text(std::borrow::Cow<'a, str>),
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// What is wrong.
    pub message: String,
    /// 1-based line in the expression (0 when unknown).
    pub line: u64,
    /// 1-based column in the expression (0 when unknown).
    pub column: u64,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(
                f,
                "{} (line {}, column {})",
                self.message, self.line, self.column
            )
        }
    }
}

impl std::error::Error for ExprError {}

fn error_at(message: impl Into<String>, at: Location) -> ExprError {
    ExprError {
        message: message.into(),
        line: at.line,
        column: at.column,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Column(usize),
    Literal(Value<'static>),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    IsNull(Box<Node>, bool),
    IsBool(Box<Node>, bool, bool),
    InList(Box<Node>, Vec<Node>, bool),
    Like {
        expr: Box<Node>,
        pattern: Vec<char>,
        negated: bool,
        case_insensitive: bool,
    },
}

/// A compiled expression over a fixed list of columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    root: Node,
    used: Vec<usize>,
}

/// The static type of a node: `None` for NULL literals (any type).
type Ty = Option<Type>;

struct Compiler<'c> {
    columns: &'c [(&'c str, Type)],
    used: Vec<usize>,
}

impl Expr {
    /// Parses `sql` as one boolean expression over `columns` (name, type), checking names and
    /// types.
    pub fn compile(sql: &str, columns: &[(&str, Type)]) -> Result<Expr, ExprError> {
        crate::sqltext::check_name_chains(sql, crate::sqltext::MAX_NAME_CHAIN_DOTS)
            .map_err(|e| error_at(e, Location::of(1, 1)))?;
        // a parse with a step budget: text the parser backtracks over is refused, not parsed for
        // hours (crate::sqltext::fuel)
        let steps = crate::sqltext::fuel::allowance(sql);
        let dialect = crate::sqltext::fuel::Fuelled::new(GenericDialect {}, steps);
        let mut parser = Parser::new(&dialect)
            .try_with_sql(sql)
            .map_err(|e| parse_error(sql, &e.to_string()))?;
        let parsed = parser.parse_expr().map_err(|e| {
            if dialect.exhausted() {
                error_at(
                    crate::sqltext::too_much_work(steps, sql.len()),
                    Location::of(1, 1),
                )
            } else {
                parse_error(sql, &e.to_string())
            }
        })?;
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(error_at(
                format!("unexpected {} after the expression", next.token),
                next.span.start,
            ));
        }
        let mut c = Compiler {
            columns,
            used: Vec::new(),
        };
        let (root, ty) = c.node(&parsed)?;
        if !matches!(ty, Some(Type::Bool) | None) {
            return Err(error_at(
                "the expression must be a condition (true or false), not a value",
                parsed.span().start,
            ));
        }
        c.used.sort_unstable();
        c.used.dedup();
        Ok(Expr { root, used: c.used })
    }

    /// Indexes of the columns the expression reads.
    pub fn columns_used(&self) -> &[usize] {
        &self.used
    }

    /// Whether the expression holds for the row whose column `i` is `row(i)`; NULL does not hold.
    pub fn holds<'r>(&self, row: &dyn Fn(usize) -> Value<'r>) -> bool {
        matches!(eval(&self.root, row), Value::Bool(true))
    }
}

/// sqlparser reports positions as "… at Line: 1, Column: 5"; keep them as numbers. Errors
/// without a position are at the end of the input ("found: EOF").
fn parse_error(sql: &str, text: &str) -> ExprError {
    let text = text.strip_prefix("sql parser error: ").unwrap_or(text);
    let position = text.rfind(" at Line: ").and_then(|i| {
        let rest = &text[i + " at Line: ".len()..];
        let (line, column) = rest.split_once(", Column: ")?;
        Some((i, line.trim().parse().ok()?, column.trim().parse().ok()?))
    });
    match position {
        Some((i, line, column)) => ExprError {
            message: text[..i].to_owned(),
            line,
            column,
        },
        None => {
            let line = sql.lines().count().max(1);
            let column = sql.lines().last().map_or(0, |l| l.chars().count()) + 1;
            ExprError {
                message: text.to_owned(),
                line: line as u64,
                column: column as u64,
            }
        }
    }
}

fn type_name(t: Ty) -> &'static str {
    match t {
        Some(Type::Bool) => "boolean",
        Some(Type::Int) => "integer",
        Some(Type::Float) => "number",
        Some(Type::Text) => "text",
        None => "null",
    }
}

fn numeric(t: Ty) -> bool {
    matches!(t, Some(Type::Int | Type::Float) | None)
}

fn comparable(a: Ty, b: Ty) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(x), Some(y)) => x == y || (numeric(a) && numeric(b)),
    }
}

impl Compiler<'_> {
    fn node(&mut self, e: &ast::Expr) -> Result<(Node, Ty), ExprError> {
        let at = e.span().start;
        Ok(match e {
            ast::Expr::Identifier(ident) => self.column(ident)?,
            ast::Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [ident] => self.column(ident)?,
                _ => {
                    return Err(error_at(
                        "qualified names are not supported here; write the column name alone",
                        at,
                    ));
                }
            },
            ast::Expr::Value(v) => literal(&v.value, at)?,
            ast::Expr::Nested(inner) => self.node(inner)?,
            ast::Expr::UnaryOp { op, expr } => {
                let (n, t) = self.node(expr)?;
                match op {
                    UnaryOperator::Not => {
                        self.expect_bool(t, expr, "NOT")?;
                        (Node::Not(Box::new(n)), Some(Type::Bool))
                    }
                    UnaryOperator::Minus => {
                        if !numeric(t) {
                            return Err(error_at(
                                format!("cannot negate a {} value", type_name(t)),
                                at,
                            ));
                        }
                        (Node::Neg(Box::new(n)), t)
                    }
                    UnaryOperator::Plus if numeric(t) => (n, t),
                    other => {
                        return Err(error_at(format!("operator {other} is not supported"), at));
                    }
                }
            }
            ast::Expr::BinaryOp { left, op, right } => self.binary(left, op, right, at)?,
            ast::Expr::IsNull(x) | ast::Expr::IsNotNull(x) => {
                let (n, _) = self.node(x)?;
                let negated = matches!(e, ast::Expr::IsNotNull(_));
                (Node::IsNull(Box::new(n), negated), Some(Type::Bool))
            }
            ast::Expr::IsTrue(x)
            | ast::Expr::IsFalse(x)
            | ast::Expr::IsNotTrue(x)
            | ast::Expr::IsNotFalse(x) => {
                let (n, t) = self.node(x)?;
                self.expect_bool(t, x, "IS TRUE/FALSE")?;
                let (want, negated) = match e {
                    ast::Expr::IsTrue(_) => (true, false),
                    ast::Expr::IsFalse(_) => (false, false),
                    ast::Expr::IsNotTrue(_) => (true, true),
                    _ => (false, true),
                };
                (Node::IsBool(Box::new(n), want, negated), Some(Type::Bool))
            }
            ast::Expr::InList {
                expr,
                list,
                negated,
            } => {
                let (n, t) = self.node(expr)?;
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    let (m, u) = self.node(item)?;
                    if !comparable(t, u) {
                        return Err(error_at(
                            format!(
                                "cannot compare {} with {} in IN (…)",
                                type_name(t),
                                type_name(u)
                            ),
                            item.span().start,
                        ));
                    }
                    items.push(m);
                }
                (Node::InList(Box::new(n), items, *negated), Some(Type::Bool))
            }
            ast::Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (n, t) = self.node(expr)?;
                let (lo, lt) = self.node(low)?;
                let (hi, ht) = self.node(high)?;
                for (u, x) in [(lt, low), (ht, high)] {
                    if !comparable(t, u) {
                        return Err(error_at(
                            format!(
                                "cannot compare {} with {} in BETWEEN",
                                type_name(t),
                                type_name(u)
                            ),
                            x.span().start,
                        ));
                    }
                }
                let n = Box::new(n);
                let inside = Node::And(
                    Box::new(Node::Cmp(Cmp::Ge, n.clone(), Box::new(lo))),
                    Box::new(Node::Cmp(Cmp::Le, n, Box::new(hi))),
                );
                let node = if *negated {
                    Node::Not(Box::new(inside))
                } else {
                    inside
                };
                (node, Some(Type::Bool))
            }
            ast::Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            }
            | ast::Expr::ILike {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => {
                let (n, t) = self.node(expr)?;
                if !matches!(t, Some(Type::Text) | None) {
                    return Err(error_at(
                        format!("LIKE needs text, got {}", type_name(t)),
                        expr.span().start,
                    ));
                }
                let pattern_text = match pattern.as_ref() {
                    ast::Expr::Value(v) => match &v.value {
                        ast::Value::SingleQuotedString(s) => s.clone(),
                        _ => {
                            return Err(error_at(
                                "the LIKE pattern must be a 'string'",
                                pattern.span().start,
                            ));
                        }
                    },
                    _ => {
                        return Err(error_at(
                            "the LIKE pattern must be a 'string'",
                            pattern.span().start,
                        ));
                    }
                };
                let case_insensitive = matches!(e, ast::Expr::ILike { .. });
                let pattern = if case_insensitive {
                    pattern_text.to_lowercase().chars().collect()
                } else {
                    pattern_text.chars().collect()
                };
                (
                    Node::Like {
                        expr: Box::new(n),
                        pattern,
                        negated: *negated,
                        case_insensitive,
                    },
                    Some(Type::Bool),
                )
            }
            other => {
                let text = other.to_string();
                let shown: String = text.chars().take(40).collect();
                return Err(error_at(
                    format!(
                        "{shown} is not supported in a rule (use columns, literals, comparisons, \
                         arithmetic, AND/OR/NOT, IS NULL, IN, BETWEEN, LIKE)"
                    ),
                    at,
                ));
            }
        })
    }

    fn expect_bool(&self, t: Ty, e: &ast::Expr, op: &str) -> Result<(), ExprError> {
        if matches!(t, Some(Type::Bool) | None) {
            Ok(())
        } else {
            Err(error_at(
                format!("{op} needs a condition, got a {} value", type_name(t)),
                e.span().start,
            ))
        }
    }

    fn column(&mut self, ident: &ast::Ident) -> Result<(Node, Ty), ExprError> {
        let name = ident.value.to_ascii_lowercase();
        match self.columns.iter().position(|(c, _)| *c == name) {
            Some(i) => {
                self.used.push(i);
                Ok((Node::Column(i), Some(self.columns[i].1)))
            }
            None => {
                let known: Vec<&str> = self.columns.iter().map(|(c, _)| *c).collect();
                Err(error_at(
                    format!(
                        "unknown column {:?}; known columns: {}",
                        ident.value,
                        known.join(", ")
                    ),
                    ident.span.start,
                ))
            }
        }
    }

    fn binary(
        &mut self,
        left: &ast::Expr,
        op: &BinaryOperator,
        right: &ast::Expr,
        at: Location,
    ) -> Result<(Node, Ty), ExprError> {
        let (l, lt) = self.node(left)?;
        let (r, rt) = self.node(right)?;
        let (l, r) = (Box::new(l), Box::new(r));
        let cmp = match op {
            BinaryOperator::Eq => Some(Cmp::Eq),
            BinaryOperator::NotEq => Some(Cmp::Ne),
            BinaryOperator::Lt => Some(Cmp::Lt),
            BinaryOperator::LtEq => Some(Cmp::Le),
            BinaryOperator::Gt => Some(Cmp::Gt),
            BinaryOperator::GtEq => Some(Cmp::Ge),
            _ => None,
        };
        if let Some(c) = cmp {
            if !comparable(lt, rt) {
                return Err(error_at(
                    format!(
                        "cannot compare {} with {} ({op})",
                        type_name(lt),
                        type_name(rt)
                    ),
                    at,
                ));
            }
            return Ok((Node::Cmp(c, l, r), Some(Type::Bool)));
        }
        match op {
            BinaryOperator::And | BinaryOperator::Or => {
                self.expect_bool(lt, left, &op.to_string())?;
                self.expect_bool(rt, right, &op.to_string())?;
                let node = if *op == BinaryOperator::And {
                    Node::And(l, r)
                } else {
                    Node::Or(l, r)
                };
                Ok((node, Some(Type::Bool)))
            }
            BinaryOperator::Plus
            | BinaryOperator::Minus
            | BinaryOperator::Multiply
            | BinaryOperator::Divide
            | BinaryOperator::Modulo => {
                if !numeric(lt) || !numeric(rt) {
                    return Err(error_at(
                        format!(
                            "{op} needs numbers, got {} and {}",
                            type_name(lt),
                            type_name(rt)
                        ),
                        at,
                    ));
                }
                let a = match op {
                    BinaryOperator::Plus => Arith::Add,
                    BinaryOperator::Minus => Arith::Sub,
                    BinaryOperator::Multiply => Arith::Mul,
                    BinaryOperator::Divide => Arith::Div,
                    _ => Arith::Mod,
                };
                // integer division as in SQL; anything with a double is a double
                let ty = if lt == Some(Type::Float) || rt == Some(Type::Float) {
                    Some(Type::Float)
                } else {
                    lt.or(rt)
                };
                Ok((Node::Arith(a, l, r), ty))
            }
            other => Err(error_at(format!("operator {other} is not supported"), at)),
        }
    }
}

fn literal(v: &ast::Value, at: Location) -> Result<(Node, Ty), ExprError> {
    Ok(match v {
        ast::Value::Number(text, _) => {
            if let Ok(i) = text.parse::<i64>() {
                (Node::Literal(Value::Int(i)), Some(Type::Int))
            } else if let Ok(f) = text.parse::<f64>() {
                (Node::Literal(Value::Float(f)), Some(Type::Float))
            } else {
                return Err(error_at(format!("{text} is not a number"), at));
            }
        }
        ast::Value::SingleQuotedString(s) => (
            Node::Literal(Value::Text(s.clone().into())),
            Some(Type::Text),
        ),
        ast::Value::Boolean(b) => (Node::Literal(Value::Bool(*b)), Some(Type::Bool)),
        ast::Value::Null => (Node::Literal(Value::Null), None),
        other => {
            return Err(error_at(
                format!("literal {other} is not supported (use numbers, 'text', TRUE/FALSE, NULL)"),
                at,
            ));
        }
    })
}

fn eval<'r>(n: &Node, row: &dyn Fn(usize) -> Value<'r>) -> Value<'r> {
    match n {
        Node::Column(i) => row(*i),
        Node::Literal(v) => match v {
            Value::Text(s) => Value::Text(std::borrow::Cow::Owned(s.to_string())),
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::Float(f) => Value::Float(*f),
        },
        Node::Not(x) => match eval(x, row) {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Null,
        },
        Node::Neg(x) => match eval(x, row) {
            Value::Int(i) => Value::Int(i.wrapping_neg()),
            Value::Float(f) => Value::Float(-f),
            _ => Value::Null,
        },
        Node::And(a, b) => match eval(a, row) {
            Value::Bool(false) => Value::Bool(false),
            left => match (left, eval(b, row)) {
                (_, Value::Bool(false)) => Value::Bool(false),
                (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                _ => Value::Null,
            },
        },
        Node::Or(a, b) => match eval(a, row) {
            Value::Bool(true) => Value::Bool(true),
            left => match (left, eval(b, row)) {
                (_, Value::Bool(true)) => Value::Bool(true),
                (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                _ => Value::Null,
            },
        },
        Node::Cmp(c, a, b) => match compare(&eval(a, row), &eval(b, row)) {
            Some(o) => Value::Bool(match c {
                Cmp::Eq => o.is_eq(),
                Cmp::Ne => o.is_ne(),
                Cmp::Lt => o.is_lt(),
                Cmp::Le => o.is_le(),
                Cmp::Gt => o.is_gt(),
                Cmp::Ge => o.is_ge(),
            }),
            None => Value::Null,
        },
        Node::Arith(op, a, b) => arith(*op, &eval(a, row), &eval(b, row)),
        Node::IsNull(x, negated) => Value::Bool(matches!(eval(x, row), Value::Null) != *negated),
        Node::IsBool(x, want, negated) => {
            Value::Bool(matches!(eval(x, row), Value::Bool(b) if b == *want) != *negated)
        }
        Node::InList(x, items, negated) => {
            let v = eval(x, row);
            if matches!(v, Value::Null) {
                return Value::Null;
            }
            let mut saw_null = false;
            for item in items {
                match compare(&v, &eval(item, row)) {
                    Some(o) if o.is_eq() => return Value::Bool(!negated),
                    None => saw_null = true,
                    Some(_) => {}
                }
            }
            if saw_null {
                Value::Null
            } else {
                Value::Bool(*negated)
            }
        }
        Node::Like {
            expr,
            pattern,
            negated,
            case_insensitive,
        } => match eval(expr, row) {
            Value::Text(s) => {
                let text: Vec<char> = if *case_insensitive {
                    s.to_lowercase().chars().collect()
                } else {
                    s.chars().collect()
                };
                Value::Bool(like(&text, pattern) != *negated)
            }
            _ => Value::Null,
        },
    }
}

fn compare(a: &Value<'_>, b: &Value<'_>) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Text(x), Value::Text(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn arith<'r>(op: Arith, a: &Value<'_>, b: &Value<'_>) -> Value<'r> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => match op {
            Arith::Add => x.checked_add(*y).map_or(Value::Null, Value::Int),
            Arith::Sub => x.checked_sub(*y).map_or(Value::Null, Value::Int),
            Arith::Mul => x.checked_mul(*y).map_or(Value::Null, Value::Int),
            // division by zero is NULL rather than an error: a rule must never stop the pipeline
            Arith::Div => x.checked_div(*y).map_or(Value::Null, Value::Int),
            Arith::Mod => x.checked_rem(*y).map_or(Value::Null, Value::Int),
        },
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let as_f = |v: &Value<'_>| match v {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                _ => f64::NAN,
            };
            let (x, y) = (as_f(a), as_f(b));
            let r = match op {
                Arith::Add => x + y,
                Arith::Sub => x - y,
                Arith::Mul => x * y,
                Arith::Div => x / y,
                Arith::Mod => x % y,
            };
            if r.is_finite() {
                Value::Float(r)
            } else {
                Value::Null
            }
        }
        _ => Value::Null,
    }
}

/// SQL LIKE: `%` any run, `_` one character.
fn like(text: &[char], pattern: &[char]) -> bool {
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '_' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == '%' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: &[(&str, Type)] = &[
        ("occupancy_ratio", Type::Float),
        ("zone", Type::Text),
        ("battery", Type::Int),
        ("occupied", Type::Bool),
    ];

    fn row(
        ratio: f64,
        zone: Option<&str>,
        battery: Option<i64>,
        occupied: bool,
    ) -> Vec<Value<'static>> {
        vec![
            Value::Float(ratio),
            zone.map_or(Value::Null, |z| Value::Text(z.to_owned().into())),
            battery.map_or(Value::Null, Value::Int),
            Value::Bool(occupied),
        ]
    }

    fn holds(sql: &str, r: &[Value<'static>]) -> bool {
        let e = Expr::compile(sql, COLS).unwrap();
        e.holds(&|i| r[i].clone())
    }

    #[test]
    fn evaluates_the_example_of_the_spec() {
        let sql = "occupancy_ratio > 0.95 AND zone = 'centre'";
        assert!(holds(sql, &row(0.96, Some("centre"), None, true)));
        assert!(!holds(sql, &row(0.95, Some("centre"), None, true)));
        assert!(!holds(sql, &row(0.99, Some("north"), None, true)));
        assert!(
            !holds(sql, &row(0.99, None, None, true)),
            "NULL does not hold"
        );
    }

    #[test]
    fn three_valued_logic_in_between_like_and_arithmetic() {
        let r = row(0.5, Some("Centre-East"), None, false);
        assert!(holds("battery IS NULL OR battery < 10", &r));
        assert!(!holds("battery < 10", &r));
        assert!(!holds("NOT (battery < 10)", &r), "NOT NULL is NULL");
        assert!(holds("zone LIKE 'Centre%'", &r));
        assert!(holds("zone ILIKE 'centre-_ast'", &r));
        assert!(holds("zone NOT IN ('north', 'south')", &r));
        assert!(holds("occupancy_ratio BETWEEN 0.4 AND 0.6", &r));
        assert!(holds("occupancy_ratio * 100 >= 50", &r));
        assert!(holds("occupied IS FALSE", &r));
        assert!(holds("NOT occupied", &r));
        let r = row(0.5, Some("x"), Some(7), true);
        assert!(
            holds("battery % 2 = 1 AND battery / 2 = 3", &r),
            "integer division"
        );
        assert!(
            !holds("battery / 0 = 1", &r),
            "division by zero is NULL, not a crash"
        );
    }

    #[test]
    fn text_the_parser_backtracks_over_is_refused_quickly() {
        // the fuzzer's fourth finding (11 s under the fuzzer): the parse runs out of steps
        let found = include_bytes!("../../fuzz/seeds/alert_expr/regression_backtracking_slices");
        let t0 = std::time::Instant::now();
        // (the fuzz input's first byte picks the columns; the text follows)
        let e = Expr::compile(&String::from_utf8_lossy(&found[1..]), COLS).unwrap_err();
        assert!(e.message.contains("backtrack"), "{e}");
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn reports_the_position_of_errors() {
        let e = Expr::compile("occupancy_ratio > 0.95 AND zon = 'centre'", COLS).unwrap_err();
        assert_eq!((e.line, e.column), (1, 28), "{e}");
        assert!(e.message.contains("unknown column \"zon\""), "{e}");
        let e = Expr::compile("occupancy_ratio > ", COLS).unwrap_err();
        assert!(e.line == 1 && e.column > 0, "{e}");
        let e = Expr::compile("zone = 'a' zone", COLS).unwrap_err();
        assert_eq!((e.line, e.column), (1, 12), "{e}");
        let e = Expr::compile("zone > 3", COLS).unwrap_err();
        assert!(
            e.message.contains("cannot compare text with integer"),
            "{e}"
        );
        let e = Expr::compile("battery + 1", COLS).unwrap_err();
        assert!(e.message.contains("must be a condition"), "{e}");
        let e = Expr::compile("upper(zone) = 'X'", COLS).unwrap_err();
        assert!(e.message.contains("not supported"), "{e}");
    }

    #[test]
    fn like_matches_sql_semantics() {
        let m = |t: &str, p: &str| {
            like(
                &t.chars().collect::<Vec<_>>(),
                &p.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("abc", "a%"));
        assert!(m("abc", "%c"));
        assert!(m("abc", "a_c"));
        assert!(m("", "%"));
        assert!(!m("abc", "a_"));
        assert!(m("aXbXc", "a%b%c"));
        assert!(!m("ab", "a%b%c"));
    }
}
