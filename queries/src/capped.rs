//! Functions whose result size comes from their arguments, capped.
//!
//! DataFusion's memory pool bounds what operators hold (sorts, joins, aggregates), but a scalar
//! function allocates its result directly: `repeat('x', 2100000000)` built 2 GB per row outside the
//! pool. Each function here is DataFusion's own, wrapped: before it runs on a batch, the size of
//! what it would build for the whole batch is worked out from its arguments, and past
//! `serve.max_function_output_mb` the call fails with an error naming that limit instead of
//! allocating. The estimate is an upper bound where one is cheap (4 bytes per padded character),
//! else the exact size.
//!
//! Capped: `repeat`, `lpad`, `rpad`, `replace`, `regexp_replace`, `concat`, `concat_ws`,
//! `array_repeat`, `array_resize`, `array_to_string`, `array_replace`, `array_replace_n`,
//! `array_replace_all`, `array_concat`, `array_append`, `array_prepend`, `range` and
//! `generate_series` (as scalar functions returning a list), with their aliases, and the `||`
//! operator: a chain of CTEs that each double a value (`s || s`) stops at the cap instead of
//! building gigabytes outside the pool. `||` on text becomes [`StrictConcat`] (the capped `concat`,
//! NULL when either side is NULL, as the operator is); on lists DataFusion's planner makes it
//! `array_concat`/`array_append`/`array_prepend` from its built-in instances, which the
//! [`CapRewrite`] swaps for the session's capped ones.
//!
//! Every other scalar function of the session is [`Checked`]: its result is measured after it
//! runs, and one past the cap is refused. Their results grow at most a small factor over their
//! arguments (`upper` up to 3× in bytes, `encode(…, 'hex')` 2×, `translate` 4×, `make_array` and
//! `named_struct` the sum of their arguments), so a call allocates at most that factor over
//! arguments that are within the cap themselves, and a chain of them (`encode(encode(…))`, a CTE
//! per step) stops at the cap instead of compounding. A cast of a list or struct to text grows
//! its input by a bounded factor too, and what is built from it is checked again.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, FieldRef, IntervalMonthDayNanoType, TimeUnit};
use datafusion::common::ExprSchema;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::FunctionRewrite;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, ExpressionPlacement, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, StructFieldMapping,
};
use datafusion::prelude::SessionContext;

/// How a function's result size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Size {
    /// `repeat(text, n)`: length × n.
    Repeat,
    /// `lpad`/`rpad(text, n[, fill])`: n characters of up to 4 bytes.
    Pad,
    /// `replace(text, from, to)`, `regexp_replace(text, pattern, to[, flags])`: every possible
    /// match replaced by `to`.
    Replace {
        /// The smallest match: `from`'s length (`replace`), 0 for a pattern.
        pattern: bool,
    },
    /// `array_repeat(element, n)`: n copies of the element (8 bytes or more each).
    Elements,
    /// `array_resize(list, n[, value])`: n elements of the fill value's size (8 bytes or more).
    Resize,
    /// `array_to_string(list, delimiter[, null])`: a delimiter (and a null string) per element.
    Join,
    /// `array_replace*(list, from, to[, n])`: every element replaced by `to`.
    ReplaceElements,
    /// `range`/`generate_series([start,] stop[, step])`: the number of steps × 8 bytes.
    Series,
    /// `concat(a, b, …)`, `||`: the sum of the arguments; `concat_ws(sep, a, b, …)` adds a
    /// separator between each two.
    Concat {
        /// The first argument is a separator (`concat_ws`).
        separator: bool,
    },
    /// `array_concat`, `array_append`, `array_prepend`: the sum of the arguments' sizes.
    Lists,
}

/// DataFusion's function, with its result size checked before it runs.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Capped {
    inner: ScalarUDF,
    size: Size,
    cap_bytes: u64,
}

/// Replaces the session's functions that can build unbounded values by capped ones.
pub fn register(ctx: &SessionContext, cap_bytes: u64) -> DfResult<()> {
    for (name, size) in [
        ("repeat", Size::Repeat),
        ("lpad", Size::Pad),
        ("rpad", Size::Pad),
        ("replace", Size::Replace { pattern: false }),
        ("regexp_replace", Size::Replace { pattern: true }),
        ("array_repeat", Size::Elements),
        ("array_resize", Size::Resize),
        ("array_to_string", Size::Join),
        ("array_replace", Size::ReplaceElements),
        ("array_replace_n", Size::ReplaceElements),
        ("array_replace_all", Size::ReplaceElements),
        ("range", Size::Series),
        ("generate_series", Size::Series),
        ("concat", Size::Concat { separator: false }),
        ("concat_ws", Size::Concat { separator: true }),
        ("array_concat", Size::Lists),
        ("array_append", Size::Lists),
        ("array_prepend", Size::Lists),
    ] {
        let Ok(inner) = ctx.udf(name) else {
            return Err(DataFusionError::Plan(format!(
                "function {name} is missing; cannot cap it"
            )));
        };
        ctx.register_udf(ScalarUDF::new_from_impl(Capped {
            inner: inner.as_ref().clone(),
            size,
            cap_bytes,
        }));
    }
    // every other function: its result checked after it runs
    let others: Vec<Arc<ScalarUDF>> = ctx
        .state()
        .scalar_functions()
        .values()
        .filter(|f| wrap_after(f))
        .cloned()
        .collect();
    for f in others {
        if ctx.udf(f.name()).is_ok_and(|now| wrap_after(&now)) {
            ctx.register_udf(ScalarUDF::new_from_impl(Checked {
                inner: f.as_ref().clone(),
                cap_bytes,
            }));
        }
    }
    // the session's instance of each function, for the rewrite to swap built-in ones for
    let session: HashMap<String, Arc<ScalarUDF>> = ctx
        .state()
        .scalar_functions()
        .values()
        .filter(|f| f.inner().is::<Capped>() || f.inner().is::<Checked>())
        .map(|f| (f.name().to_owned(), f.clone()))
        .collect();
    let string = Arc::new(ScalarUDF::new_from_impl(StrictConcat {
        concat: ctx.udf("concat")?.as_ref().clone(),
    }));
    ctx.state_ref()
        .write()
        .register_function_rewrite(Arc::new(CapRewrite { string, session }))?;
    Ok(())
}

/// Functions left as they are: DataFusion recognises them by their type (the Parquet scan
/// replaces `input_file_name` and `file_row_index` by the file's values; the simplifier folds
/// `get_field` of a struct and `log`/`power` of each other), and none builds more than a number
/// or a part of its argument.
const UNWRAPPED: [&str; 5] = [
    "get_field",
    "input_file_name",
    "file_row_index",
    "log",
    "power",
];

/// Whether `f` is one to wrap in [`Checked`]: not capped already, not asynchronous, not one of
/// [`UNWRAPPED`].
fn wrap_after(f: &ScalarUDF) -> bool {
    !(f.inner().is::<Capped>()
        || f.inner().is::<Checked>()
        || f.inner().is::<StrictConcat>()
        || f.as_async().is_some()
        || UNWRAPPED.contains(&f.name()))
}

/// `a || b` on text: the capped `concat`, but NULL when either side is NULL (`concat` skips
/// NULLs; the operator does not).
#[derive(Debug, PartialEq, Eq, Hash)]
struct StrictConcat {
    concat: ScalarUDF,
}

impl ScalarUDFImpl for StrictConcat {
    fn name(&self) -> &str {
        "string_concat"
    }

    fn signature(&self) -> &Signature {
        self.concat.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.concat.return_type(arg_types)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.concat.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let any_null_constant = args
            .args
            .iter()
            .any(|a| matches!(a, ColumnarValue::Scalar(s) if s.is_null()));
        if any_null_constant {
            let null = ScalarValue::try_from(args.return_field.data_type())?;
            return Ok(ColumnarValue::Scalar(null));
        }
        let each: Vec<Option<NullBuffer>> = args
            .args
            .iter()
            .map(|a| match a {
                ColumnarValue::Array(a) => a.logical_nulls(),
                ColumnarValue::Scalar(_) => None,
            })
            .collect();
        let nulls = NullBuffer::union_many(each.iter().map(Option::as_ref));
        let rows = args.number_rows;
        let out = self.concat.invoke_with_args(args)?;
        let Some(nulls) = nulls else { return Ok(out) };
        let out = out.into_array(rows)?;
        let nulls = NullBuffer::union(out.logical_nulls().as_ref(), Some(&nulls));
        let data = out.to_data().into_builder().nulls(nulls).build()?;
        Ok(ColumnarValue::Array(arrow::array::make_array(data)))
    }
}

/// Runs before type coercion: `||` on anything but lists becomes [`StrictConcat`], and a
/// built-in function instance (the planner makes `||` on lists into `array_concat`,
/// `array_append` or `array_prepend` from DataFusion's own) becomes the session's capped or
/// checked one.
#[derive(Debug)]
struct CapRewrite {
    string: Arc<ScalarUDF>,
    session: HashMap<String, Arc<ScalarUDF>>,
}

impl FunctionRewrite for CapRewrite {
    fn name(&self) -> &str {
        "fjord_capped_concat"
    }

    fn rewrite(
        &self,
        expr: Expr,
        schema: &DFSchema,
        _config: &ConfigOptions,
    ) -> DfResult<Transformed<Expr>> {
        match expr {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::StringConcat,
                right,
            }) => {
                let list = |e: &Expr| {
                    matches!(
                        e.get_type(schema),
                        Ok(DataType::List(_)
                            | DataType::LargeList(_)
                            | DataType::FixedSizeList(..))
                    )
                };
                if list(&left) || list(&right) {
                    return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                        left,
                        op: Operator::StringConcat,
                        right,
                    })));
                }
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(self.string.clone(), vec![*left, *right]),
                )))
            }
            Expr::ScalarFunction(f) if wrap_after(&f.func) => {
                match self.session.get(f.func.name()) {
                    Some(capped) => Ok(Transformed::yes(Expr::ScalarFunction(
                        ScalarFunction::new_udf(capped.clone(), f.args),
                    ))),
                    None => Ok(Transformed::no(Expr::ScalarFunction(f))),
                }
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

/// One argument as numbers per row: a constant, or one value per row.
enum Col {
    One(Option<i64>),
    Many(Int64Array),
}

impl Col {
    fn get(&self, i: usize) -> Option<i64> {
        match self {
            Col::One(v) => *v,
            Col::Many(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// `arg` turned into numbers by `f` (applied to the one value of a constant, not to copies).
fn per_row(arg: &ColumnarValue, f: impl Fn(&ArrayRef) -> DfResult<Int64Array>) -> DfResult<Col> {
    match arg {
        ColumnarValue::Scalar(s) => {
            let a = f(&s.to_array_of_size(1)?)?;
            Ok(Col::One(a.is_valid(0).then(|| a.value(0))))
        }
        ColumnarValue::Array(a) => Ok(Col::Many(f(a)?)),
    }
}

fn as_i64(a: &ArrayRef) -> DfResult<Int64Array> {
    let c = arrow::compute::cast(a, &DataType::Int64)?;
    Ok(c.as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .unwrap_or_else(|| Int64Array::from(vec![None::<i64>; a.len()])))
}

/// Byte length of text (or, for anything else, of its values on average, at least 8).
fn byte_len(a: &ArrayRef) -> DfResult<Int64Array> {
    match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let l = arrow::compute::kernels::length::length(a)?;
            as_i64(&l)
        }
        _ => {
            let each = (logical_bytes(a.as_ref()) / a.len().max(1)).max(8) as i64;
            Ok(Int64Array::from(vec![each; a.len()]))
        }
    }
}

/// Bytes of an argument for the whole batch (a constant counts once per row).
fn total_bytes(arg: &ColumnarValue, rows: usize) -> DfResult<u128> {
    Ok(match per_row(arg, byte_len)? {
        Col::One(v) => (v.unwrap_or(0).max(0) as u128).saturating_mul(rows.max(1) as u128),
        Col::Many(a) => a.iter().flatten().map(|v| v.max(0) as u128).sum(),
    })
}

/// What a series steps over: plain numbers, days (dates) or nanoseconds (timestamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Number,
    Day,
    Nano,
}

const DAY_NS: i64 = 86_400_000_000_000;

fn unit_of(t: &DataType) -> Unit {
    match t {
        DataType::Date32 | DataType::Date64 => Unit::Day,
        DataType::Timestamp(_, _) => Unit::Nano,
        _ => Unit::Number,
    }
}

/// The number of elements of each list (0 for anything that is not a list).
fn list_len(a: &ArrayRef) -> DfResult<Int64Array> {
    match a.data_type() {
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            as_i64(&arrow::compute::kernels::length::length(a)?)
        }
        _ => Ok(Int64Array::from(vec![0_i64; a.len()])),
    }
}

/// Bytes of a list argument's values, for the whole batch (a constant counts once per row).
fn values_bytes(arg: &ColumnarValue, rows: usize) -> u128 {
    match arg {
        ColumnarValue::Scalar(s) => (s.size() as u128).saturating_mul(rows.max(1) as u128),
        ColumnarValue::Array(a) => logical_bytes(a.as_ref()) as u128,
    }
}

/// A bound as a number of its unit (days since 1970 for dates, nanoseconds for timestamps).
fn bound(a: &ArrayRef) -> DfResult<Int64Array> {
    match a.data_type() {
        DataType::Date32 => as_i64(&arrow::compute::cast(a, &DataType::Int32)?),
        DataType::Date64 => {
            let ms = as_i64(&arrow::compute::cast(a, &DataType::Int64)?)?;
            Ok(ms.iter().map(|v| v.map(|v| v / 86_400_000)).collect())
        }
        DataType::Timestamp(_, _) => {
            let ns = arrow::compute::cast(a, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
            as_i64(&ns)
        }
        _ => as_i64(a),
    }
}

/// A step as a number of `unit` (an interval: a month counted as 28 days, the most steps). An
/// interval whose parts differ in sign (`1 month - 31 days`) can step by zero in some months and
/// never end: refused.
fn step(a: &ArrayRef, unit: Unit) -> DfResult<Int64Array> {
    let DataType::Interval(_) = a.data_type() else {
        return as_i64(a);
    };
    let c = arrow::compute::cast(
        a,
        &DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
    )?;
    let c = c
        .as_any()
        .downcast_ref::<arrow::array::IntervalMonthDayNanoArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("interval cast".into()))?;
    c.iter()
        .map(|v| {
            let Some(v) = v else { return Ok(None) };
            let (months, days, nanos) = IntervalMonthDayNanoType::to_parts(v);
            let signs = [i64::from(months), i64::from(days), nanos]
                .map(i64::signum)
                .into_iter()
                .filter(|s| *s != 0)
                .collect::<Vec<_>>();
            if signs.windows(2).any(|w| w[0] != w[1]) {
                return Err(DataFusionError::Execution(
                    "range()/generate_series() with an interval whose parts differ in sign is not supported: its step can be zero".into(),
                ));
            }
            let ns = i64::from(months)
                .saturating_mul(28 * DAY_NS)
                .saturating_add(i64::from(days).saturating_mul(DAY_NS))
                .saturating_add(nanos);
            Ok(Some(match unit {
                Unit::Day => ns / DAY_NS,
                _ => ns,
            }))
        })
        .collect()
}

impl Capped {
    /// Bytes the call would build for the whole batch.
    fn estimate(&self, args: &[ColumnarValue], rows: usize) -> DfResult<u128> {
        let rows_of = |cols: &[Col], f: &dyn Fn(&[Option<i64>]) -> u128| -> u128 {
            let constant = cols.iter().all(|c| matches!(c, Col::One(_)));
            let n = if constant { 1 } else { rows };
            let mut total = 0u128;
            for i in 0..n {
                // (at most 3 arguments: no allocation per row)
                let mut vals = [None; 3];
                for (v, c) in vals.iter_mut().zip(cols) {
                    *v = c.get(i);
                }
                total = total.saturating_add(f(&vals[..cols.len().min(3)]));
            }
            if constant {
                total.saturating_mul(rows.max(1) as u128)
            } else {
                total
            }
        };
        let pos = |v: Option<i64>| v.unwrap_or(0).max(0) as u128;
        Ok(match self.size {
            Size::Repeat if args.len() >= 2 => {
                let cols = [per_row(&args[0], byte_len)?, per_row(&args[1], as_i64)?];
                rows_of(&cols, &|v| pos(v[0]).saturating_mul(pos(v[1])))
            }
            Size::Pad if args.len() >= 2 => {
                let cols = [per_row(&args[1], as_i64)?];
                rows_of(&cols, &|v| pos(v[0]).saturating_mul(4))
            }
            Size::Replace { pattern } if args.len() >= 3 => {
                let cols = [
                    per_row(&args[0], byte_len)?,
                    per_row(&args[1], byte_len)?,
                    per_row(&args[2], byte_len)?,
                ];
                rows_of(&cols, &|v| {
                    let text = pos(v[0]);
                    let from = if pattern { 1 } else { pos(v[1]).max(1) };
                    let matches = text / from + 1;
                    text.saturating_add(matches.saturating_mul(pos(v[2])))
                })
            }
            Size::Elements if args.len() >= 2 => {
                let cols = [per_row(&args[0], byte_len)?, per_row(&args[1], as_i64)?];
                rows_of(&cols, &|v| pos(v[0]).max(8).saturating_mul(pos(v[1])))
            }
            Size::Resize if args.len() >= 2 => {
                let fill = match args.get(2) {
                    Some(f) => per_row(f, byte_len)?,
                    None => Col::One(Some(8)),
                };
                let cols = [fill, per_row(&args[1], as_i64)?];
                rows_of(&cols, &|v| pos(v[0]).max(8).saturating_mul(pos(v[1])))
            }
            Size::Join if args.len() >= 2 => {
                let null = match args.get(2) {
                    Some(n) => per_row(n, byte_len)?,
                    None => Col::One(Some(0)),
                };
                let cols = [
                    per_row(&args[0], list_len)?,
                    per_row(&args[1], byte_len)?,
                    null,
                ];
                let joined = rows_of(&cols, &|v| {
                    pos(v[0]).saturating_mul(pos(v[1]).saturating_add(pos(v[2])))
                });
                joined.saturating_add(values_bytes(&args[0], rows))
            }
            Size::ReplaceElements if args.len() >= 3 => {
                let cols = [per_row(&args[0], list_len)?, per_row(&args[2], byte_len)?];
                let replaced = rows_of(&cols, &|v| pos(v[0]).saturating_mul(pos(v[1]).max(8)));
                replaced.saturating_add(values_bytes(&args[0], rows))
            }
            Size::Series if !args.is_empty() => {
                let (start, stop) = match args.len() {
                    1 => (Col::One(Some(0)), per_row(&args[0], bound)?),
                    _ => (per_row(&args[0], bound)?, per_row(&args[1], bound)?),
                };
                let unit = unit_of(&args[0].data_type());
                let by = match args.get(2) {
                    Some(s) => per_row(s, |a| step(a, unit))?,
                    None => Col::One(Some(1)),
                };
                rows_of(&[start, stop, by], &|v| {
                    let (a, b) = (v[0].unwrap_or(0), v[1].unwrap_or(0));
                    let s = v[2].unwrap_or(1).unsigned_abs().max(1);
                    let steps = u128::from(a.abs_diff(b)) / u128::from(s) + 1;
                    steps.saturating_mul(8)
                })
            }
            Size::Concat { separator } => {
                let values = if separator {
                    args.get(1..).unwrap_or(&[])
                } else {
                    args
                };
                let mut total = 0u128;
                for a in values {
                    total = total.saturating_add(total_bytes(a, rows)?);
                }
                // one separator between each two values
                if separator && args.len() > 2 {
                    let between = (args.len() - 2) as u128;
                    total =
                        total.saturating_add(total_bytes(&args[0], rows)?.saturating_mul(between));
                }
                total
            }
            Size::Lists => args
                .iter()
                .map(|a| values_bytes(a, rows))
                .fold(0u128, u128::saturating_add),
            _ => 0,
        })
    }
}

impl ScalarUDFImpl for Capped {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let bytes = self.estimate(&args.args, args.number_rows)?;
        if bytes > u128::from(self.cap_bytes) {
            return Err(DataFusionError::Execution(format!(
                "{}() would build {} MiB for {} row(s), more than the limit of {} MiB per call (serve.max_function_output_mb)",
                self.inner.name(),
                bytes / (1024 * 1024),
                args.number_rows,
                self.cap_bytes / (1024 * 1024)
            )));
        }
        self.inner.invoke_with_args(args)
    }
}

/// Bytes per row a [`Checked`] call may always build, whatever the cap.
const ROW_ALLOWANCE: u128 = 1024;

/// A function of the session whose result is measured after it runs (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    inner: ScalarUDF,
    cap_bytes: u64,
}

impl Checked {
    fn of(&self) -> &Arc<dyn ScalarUDFImpl> {
        self.inner.inner()
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        self.of().name()
    }

    fn aliases(&self) -> &[String] {
        self.of().aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        self.of().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.of().signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.of().return_type(arg_types)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let inner = self.of().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(Checked {
            inner,
            cap_bytes: self.cap_bytes,
        }))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.of().return_field_from_args(args)
    }

    #[allow(deprecated)]
    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        self.of().is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.of().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let out = self.of().invoke_with_args(args)?;
        let bytes = match &out {
            ColumnarValue::Array(a) => logical_bytes(a.as_ref()),
            ColumnarValue::Scalar(s) => s.size(),
        } as u128;
        // Some operators hand a function far more rows than a batch (a window over a whole
        // partition): those rows are held in the memory pool already, and a KiB each is no
        // compounding growth.
        let allowed = u128::from(self.cap_bytes).max((rows as u128).saturating_mul(ROW_ALLOWANCE));
        if bytes > allowed {
            return Err(DataFusionError::Execution(format!(
                "{}() built {} MiB for {} row(s), more than the limit of {} MiB per call (serve.max_function_output_mb)",
                self.name(),
                bytes / (1024 * 1024),
                rows,
                allowed / (1024 * 1024)
            )));
        }
        Ok(out)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        self.of().simplify(args, info)
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> DfResult<PreimageResult> {
        self.of().preimage(args, lit_expr, info)
    }

    fn short_circuits(&self) -> bool {
        self.of().short_circuits()
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.of().conditional_arguments(args)
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> DfResult<Interval> {
        self.of().evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> DfResult<Option<Vec<Interval>>> {
        self.of().propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> DfResult<SortProperties> {
        self.of().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> DfResult<bool> {
        self.of().preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> DfResult<bool> {
        self.of().strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.of().coerce_types(arg_types)
    }

    fn struct_field_mapping(
        &self,
        literal_args: &[Option<ScalarValue>],
    ) -> Option<StructFieldMapping> {
        self.of().struct_field_mapping(literal_args)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.of().documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.of().placement(args)
    }
}

/// Bytes of what `a`'s rows hold: their part of the buffers (a slice counts only its rows), the
/// text of view strings (kept in buffers the views point into, which arrays combined from them
/// share rather than copy), a list's or map's elements within its offsets, a dictionary's keys and
/// its values once.
fn logical_bytes(a: &dyn Array) -> usize {
    use arrow::array::AsArray;
    let n = a.len();
    let nulls = a.nulls().map_or(0, |b| b.len().div_ceil(8));
    let within = |offsets: &[usize]| {
        let first = offsets.first().copied().unwrap_or(0);
        let last = offsets.last().copied().unwrap_or(first);
        (first, last.saturating_sub(first))
    };
    match a.data_type() {
        DataType::Utf8View => n * 16 + nulls + a.as_string_view().total_buffer_bytes_used(),
        DataType::BinaryView => n * 16 + nulls + a.as_binary_view().total_buffer_bytes_used(),
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let o: Vec<usize> = l
                .value_offsets()
                .iter()
                .map(|&v| v.max(0) as usize)
                .collect();
            let (first, len) = within(&o);
            (n + 1) * 4 + nulls + logical_bytes(l.values().slice(first, len).as_ref())
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            let o: Vec<usize> = l
                .value_offsets()
                .iter()
                .map(|&v| v.max(0) as usize)
                .collect();
            let (first, len) = within(&o);
            (n + 1) * 8 + nulls + logical_bytes(l.values().slice(first, len).as_ref())
        }
        DataType::Map(_, _) => {
            let m = a.as_map();
            let o: Vec<usize> = m
                .value_offsets()
                .iter()
                .map(|&v| v.max(0) as usize)
                .collect();
            let (first, len) = within(&o);
            (n + 1) * 4 + nulls + logical_bytes(&m.entries().slice(first, len))
        }
        // sliced with the list: its values are the slice's
        DataType::FixedSizeList(_, _) => nulls + logical_bytes(a.as_fixed_size_list().values()),
        // sliced with the struct: its columns are the slice's
        DataType::Struct(_) => {
            nulls
                + a.as_struct()
                    .columns()
                    .iter()
                    .map(|c| logical_bytes(c.as_ref()))
                    .sum::<usize>()
        }
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            logical_bytes(d.keys()) + logical_bytes(d.values().as_ref())
        }
        _ => a
            .to_data()
            .get_slice_memory_size()
            .unwrap_or_else(|_| a.get_array_memory_size()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::ScalarValue;

    fn scalar(v: ScalarValue) -> ColumnarValue {
        ColumnarValue::Scalar(v)
    }

    async fn run(ctx: &SessionContext, sql: &str) -> DfResult<usize> {
        let b = ctx.sql(sql).await?.collect().await?;
        Ok(b.iter().map(|b| b.num_rows()).sum())
    }

    #[tokio::test]
    async fn calls_within_the_cap_answer_and_larger_ones_are_refused_before_allocating() {
        let ctx = SessionContext::new();
        register(&ctx, 1024 * 1024).unwrap();
        for ok in [
            "SELECT repeat('ab', 1000)",
            "SELECT lpad('x', 100, 'ab'), rpad('x', 100)",
            "SELECT replace('aaaa', 'a', 'bb'), regexp_replace('aaa', 'a', 'b', 'g')",
            "SELECT array_repeat(1, 1000), array_resize([1, 2], 10, 0)",
            "SELECT array_to_string([1, 2, 3], ', '), array_replace_all(['a', 'b'], 'a', 'c')",
            "SELECT range(1, 1000), generate_series(1, 1000)",
            "SELECT range(DATE '2026-01-01', DATE '2026-12-31', INTERVAL '1 day')",
            "SELECT repeat('x', v) FROM generate_series(1, 100) t(v)",
            "SELECT 'a' || 'b', concat('a', NULL, 'b'), concat_ws(',', 'a', 'b', 'c')",
            "SELECT [1, 2] || [3], [1] || 2, 0 || [1], array_concat([1], [2]), array_append([1], 3)",
            "WITH a AS (SELECT repeat('x', 1000) s), b AS (SELECT s || s s FROM a) SELECT s || s FROM b",
            // checked after they run: still themselves
            "SELECT upper('abc'), encode('abc', 'hex'), translate('abc', 'a', 'x'), make_array(1, 2)",
            "SELECT now() IS NOT NULL, date_trunc('day', now()), named_struct('a', 1)['a']",
            "SELECT overlay('abc' PLACING 'x' FROM 2 FOR 1), flatten([[1], [2]])",
            "SELECT CAST(make_array('a', 'b') AS TEXT), array_length(make_array(1, 2, 3))",
        ] {
            assert!(
                run(&ctx, ok).await.is_ok(),
                "{ok}: {:?}",
                run(&ctx, ok).await
            );
        }
        for (refused, name) in [
            ("SELECT length(repeat('x', 2100000000))", "repeat()"),
            ("SELECT lpad('x', 2000000000)", "lpad()"),
            ("SELECT rpad('x', 2000000000, 'yz')", "rpad()"),
            (
                "SELECT replace(repeat('a', 100000), 'a', repeat('b', 1000))",
                "replace()",
            ),
            ("SELECT array_repeat('x', 1000000000)", "array_repeat()"),
            ("SELECT list_repeat(1, 1000000000)", "array_repeat()"),
            ("SELECT array_resize([1], 1000000000, 0)", "array_resize()"),
            // a fill value that is itself large
            (
                "SELECT array_resize([''], 150000, repeat('x', 1000))",
                "array_resize()",
            ),
            (
                "SELECT array_to_string(array_repeat('a', 100000), repeat('x', 1000))",
                "array_to_string()",
            ),
            (
                "SELECT array_replace_all(array_repeat('', 100000), '', repeat('x', 1000))",
                "array_replace_all()",
            ),
            ("SELECT range(1, 3000000000)", "range()"),
            (
                "SELECT range(TIMESTAMP '2000-01-01', TIMESTAMP '2026-01-01', INTERVAL '1 second')",
                "range()",
            ),
            // dates far outside the nanosecond range, stepped in days
            (
                "SELECT range(CAST(CAST(-2000000000 AS INT) AS DATE), CAST(CAST(2000000000 AS INT) AS DATE), INTERVAL '1 day')",
                "range()",
            ),
            // an interval that can step by zero
            (
                "SELECT range(TIMESTAMP '2000-01-15', TIMESTAMP '2000-01-16', INTERVAL '1 month' - INTERVAL '31 days')",
                "range()",
            ),
            // a chain of CTEs, each doubling its value
            (
                "WITH a AS (SELECT repeat('x', 300000) s), b AS (SELECT s || s s FROM a), \
                 c AS (SELECT s || s s FROM b) SELECT length(s || s) FROM c",
                "concat()",
            ),
            (
                "WITH a AS (SELECT repeat('x', 300000) s), b AS (SELECT concat(s, s, s) s FROM a) \
                 SELECT length(concat(s, s)) FROM b",
                "concat()",
            ),
            (
                "SELECT length(concat_ws(repeat('x', 200000), 'a', 'b', 'c', 'd', 'e', 'f', 'g'))",
                "concat_ws()",
            ),
            (
                "WITH a AS (SELECT array_repeat('x', 50000) l), b AS (SELECT l || l l FROM a), \
                 c AS (SELECT l || l l FROM b) SELECT cardinality(l || l) FROM c",
                "array_concat()",
            ),
            (
                "WITH a AS (SELECT array_repeat(repeat('x', 1000), 1000) l) \
                 SELECT array_append(l, repeat('y', 100000)) FROM a",
                "array_append()",
            ),
            // per row small, for the batch too large
            (
                "SELECT length(repeat('x', 1000 + v % 2)) FROM generate_series(1, 5000) t(v)",
                "repeat()",
            ),
            // functions that grow their argument by a factor, chained: checked after each call
            (
                "WITH a AS (SELECT repeat('x', 300000) s), b AS (SELECT encode(s, 'hex') s FROM a), \
                 c AS (SELECT encode(s, 'hex') s FROM b) SELECT length(encode(s, 'hex')) FROM c",
                "encode()",
            ),
            (
                "WITH a AS (SELECT repeat('x', 300000) s), b AS (SELECT overlay(s PLACING s FROM 1 FOR 0) s FROM a), \
                 c AS (SELECT overlay(s PLACING s FROM 1 FOR 0) s FROM b) SELECT length(s) FROM c",
                "overlay()",
            ),
            (
                "SELECT length(translate(repeat('x', 300000), 'x', '😀'))",
                "translate()",
            ),
            ("SELECT length(upper(repeat('ΐ', 200000)))", "upper()"),
            (
                "WITH a AS (SELECT array_repeat(repeat('x', 100), 3000) l), \
                 b AS (SELECT flatten(make_array(l, l)) l FROM a) \
                 SELECT cardinality(flatten(make_array(l, l))) FROM b",
                "make_array()",
            ),
            (
                "SELECT length(CAST(make_array(s, s, s, s) AS TEXT)) FROM (SELECT repeat('x', 300000) s)",
                "make_array()",
            ),
            // view strings: their text lives in buffers that combined arrays share
            (
                "WITH a AS (SELECT make_array(arrow_cast(repeat('x', 100000), 'Utf8View')) l), \
                 b AS (SELECT flatten(make_array(l, l)) l FROM a), c AS (SELECT flatten(make_array(l, l)) l FROM b), \
                 d AS (SELECT flatten(make_array(l, l)) l FROM c), e AS (SELECT flatten(make_array(l, l)) l FROM d) \
                 SELECT cardinality(l) FROM e",
                "make_array()",
            ),
            (
                "WITH a AS (SELECT make_array(arrow_cast(repeat('x', 300000), 'Utf8View'), arrow_cast(repeat('y', 300000), 'Utf8View')) l) \
                 SELECT cardinality(array_concat(l, l)) FROM a",
                "array_concat()",
            ),
        ] {
            let e = run(&ctx, refused).await.unwrap_err().to_string();
            assert!(
                e.contains(name)
                    && (e.contains("serve.max_function_output_mb") || e.contains("differ in sign")),
                "{refused}: {e}"
            );
        }
    }

    #[tokio::test]
    async fn a_checked_function_may_build_a_kib_per_row_over_the_cap() {
        let ctx = SessionContext::new();
        register(&ctx, 1024 * 1024).unwrap();
        // 8192-row batches of 200-byte text: 1.6 MiB per call, over the 1 MiB cap, under 1 KiB a row
        let sql = format!(
            "SELECT count(DISTINCT upper(substr('{}', 1 + v % 2))) FROM generate_series(1, 20000) g(v)",
            "a".repeat(200)
        );
        let b = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let n = b[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(n, 2);
        // … but not more than that
        let sql = format!(
            "SELECT count(DISTINCT encode(substr('{}', 1 + v % 2), 'hex')) FROM generate_series(1, 20000) g(v)",
            "a".repeat(1000)
        );
        let e = run(&ctx, &sql).await.unwrap_err().to_string();
        assert!(
            e.contains("encode()") && e.contains("serve.max_function_output_mb"),
            "{e}"
        );
    }

    #[test]
    fn logical_bytes_count_a_slice_and_the_text_of_views() {
        use arrow::array::{ListArray, StringArray, StringViewArray};
        let text: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..100).map(|_| "x".repeat(100)),
        ));
        let all = logical_bytes(text.as_ref());
        let part = logical_bytes(text.slice(0, 10).as_ref());
        assert!(all >= 100 * 100 && part < all / 5, "{all} {part}");
        let views: ArrayRef = Arc::new(StringViewArray::from_iter_values(
            (0..100).map(|_| "x".repeat(100)),
        ));
        assert!(logical_bytes(views.as_ref()) >= 100 * 100);
        let lists = ListArray::from_iter_primitive::<arrow::datatypes::Int64Type, _, _>(
            (0..100).map(|_| Some((0..100).map(Some))),
        );
        let whole = logical_bytes(&lists);
        let one = logical_bytes(&lists.slice(0, 1));
        assert!(whole >= 100 * 100 * 8 && one < whole / 50, "{whole} {one}");
    }

    #[tokio::test]
    async fn the_concat_operator_is_null_when_either_side_is_as_it_was() {
        let ctx = SessionContext::new();
        register(&ctx, 1024 * 1024).unwrap();
        let b = ctx
            .sql(
                "SELECT s || t AS st, concat(s, t) AS c, 'x' || NULL IS NULL AS n \
                 FROM (VALUES ('a', NULL), ('b', 'c'), (NULL, 'd')) v(s, t) ORDER BY c",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&b)
            .unwrap()
            .to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1].split_whitespace().collect::<String>(), "|st|c|n|");
        assert_eq!(lines[3].split_whitespace().collect::<String>(), "||a|true|");
        assert_eq!(
            lines[4].split_whitespace().collect::<String>(),
            "|bc|bc|true|"
        );
        assert_eq!(lines[5].split_whitespace().collect::<String>(), "||d|true|");
    }

    #[test]
    fn a_constant_is_measured_once_and_counted_per_row() {
        let c = Capped {
            inner: datafusion::functions::string::repeat().as_ref().clone(),
            size: Size::Repeat,
            cap_bytes: 0,
        };
        let args = [
            scalar(ScalarValue::Utf8(Some("abc".into()))),
            scalar(ScalarValue::Int64(Some(10))),
        ];
        assert_eq!(c.estimate(&args, 7).unwrap(), 3 * 10 * 7);
    }
}
