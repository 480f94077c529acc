//! A parse whose work is bounded: a dialect that wraps sqlparser's and counts the parser's steps.
//!
//! sqlparser backtracks: where a construct can be read two ways it tries one, and on failure rewinds
//! and tries the other. Text that nests such places costs time exponential in its length (the
//! fuzzer found three patterns: chains of names, operators after dots, subscripts), and a parse
//! cannot be interrupted. sqlparser has no step limit of its own, but it asks its dialect at every
//! prefix and infix it parses, and it lets a `RecursionLimitExceeded` error through every rewind.
//! [`Fuelled`] is the wrapped dialect in every other respect (it forwards each method that the
//! generic and the PostgreSQL dialects define, and reports their type, so the parser's
//! dialect-specific branches take the same turns) and counts those calls; when they exceed the
//! allowance it answers `RecursionLimitExceeded`, which ends the parse at once.

use std::cell::Cell;

use sqlparser::ast::{Expr, Statement};
use sqlparser::dialect::{Dialect, Precedence};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};

/// Steps a parse may take: 10,000 plus 100 per byte of text. Real statements take a few steps per
/// token (a 64 KiB sum of 32,000 terms about 100,000); a backtracking pattern of a few hundred
/// bytes takes millions.
pub fn allowance(sql: &str) -> u64 {
    10_000 + 100 * sql.len() as u64
}

/// `D` with a step budget.
#[derive(Debug)]
pub struct Fuelled<D> {
    inner: D,
    left: Cell<u64>,
    exhausted: Cell<bool>,
}

impl<D: Dialect> Fuelled<D> {
    /// `inner` with `steps` parser steps.
    pub fn new(inner: D, steps: u64) -> Self {
        Self {
            inner,
            left: Cell::new(steps),
            exhausted: Cell::new(false),
        }
    }

    /// Whether a parse ran out of steps (its error then says nothing about the text's syntax).
    pub fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    /// Steps left.
    pub fn left(&self) -> u64 {
        self.left.get()
    }

    fn step(&self) -> Result<(), ParserError> {
        match self.left.get() {
            0 => {
                self.exhausted.set(true);
                Err(ParserError::RecursionLimitExceeded)
            }
            n => {
                self.left.set(n - 1);
                Ok(())
            }
        }
    }
}

macro_rules! forward_flags {
    ($($name:ident,)*) => {
        $(fn $name(&self) -> bool {
            self.inner.$name()
        })*
    };
}

impl<D: Dialect> Dialect for Fuelled<D> {
    fn dialect(&self) -> std::any::TypeId {
        self.inner.dialect()
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        if let Err(e) = self.step() {
            return Some(Err(e));
        }
        self.inner.parse_prefix(parser)
    }

    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        if let Err(e) = self.step() {
            return Some(Err(e));
        }
        self.inner.parse_infix(parser, expr, precedence)
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        if let Err(e) = self.step() {
            return Some(Err(e));
        }
        self.inner.get_next_precedence(parser)
    }

    fn parse_statement(&self, parser: &mut Parser) -> Option<Result<Statement, ParserError>> {
        if let Err(e) = self.step() {
            return Some(Err(e));
        }
        self.inner.parse_statement(parser)
    }

    fn prec_value(&self, prec: Precedence) -> u8 {
        self.inner.prec_value(prec)
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.inner.identifier_quote_style(identifier)
    }

    fn is_custom_operator_part(&self, ch: char) -> bool {
        self.inner.is_custom_operator_part(ch)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.inner.is_delimited_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.inner.is_identifier_part(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.inner.is_identifier_start(ch)
    }

    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        self.inner.is_reserved_for_identifier(kw)
    }

    // every flag that GenericDialect or PostgreSqlDialect (sqlparser 0.62) sets
    forward_flags! {
        allow_extract_custom,
        allow_extract_single_quotes,
        support_map_literal_syntax,
        supports_alter_column_type_using,
        supports_array_join_syntax,
        supports_array_typedef_with_brackets,
        supports_asc_desc_in_column_definition,
        supports_bitwise_shift_operators,
        supports_comma_separated_set_assignments,
        supports_comma_separated_trim,
        supports_comment_on,
        supports_comment_optimizer_hint,
        supports_connect_by,
        supports_constraint_keyword_without_name,
        supports_create_index_with_clause,
        supports_create_table_like_parenthesized,
        supports_create_view_comment_syntax,
        supports_cte_without_as,
        supports_data_type_signed_suffix,
        supports_detach,
        supports_dictionary_syntax,
        supports_empty_projections,
        supports_explain_with_utility_options,
        supports_extract_comma_syntax,
        supports_factorial_operator,
        supports_filter_during_aggregation,
        supports_from_first_select,
        supports_geometric_types,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_insert_table_alias,
        supports_install,
        supports_interpolate,
        supports_interval_options,
        supports_key_column_option,
        supports_left_associative_joins_without_parens,
        supports_limit_by,
        supports_limit_comma,
        supports_listen_notify,
        supports_load_extension,
        supports_match_against,
        supports_match_recognize,
        supports_multiline_comment_hints,
        supports_named_fn_args_with_assignment_operator,
        supports_named_fn_args_with_colon_operator,
        supports_named_fn_args_with_expr_name,
        supports_nested_comments,
        supports_notnull_operator,
        supports_numeric_literal_underscores,
        supports_optimize_table,
        supports_parens_around_table_factor,
        supports_parenthesized_set_variables,
        supports_partition_by_after_order_by,
        supports_pipe_operator,
        supports_prewhere,
        supports_projection_trailing_commas,
        supports_quote_delimited_string,
        supports_select_format,
        supports_select_item_multi_column_alias,
        supports_select_wildcard_except,
        supports_select_wildcard_exclude,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_select_wildcard_replace,
        supports_select_wildcard_with_alias,
        supports_set_names,
        supports_settings,
        supports_start_transaction_modifier,
        supports_string_escape_constant,
        supports_struct_literal,
        supports_try_convert,
        supports_unicode_string_literal,
        supports_update_order_by,
        supports_user_host_grantee,
        supports_values_as_table_factor,
        supports_window_clause_named_window_reference,
        supports_window_function_null_treatment_arg,
        supports_with_fill,
        supports_xml_expressions,
    }
}
