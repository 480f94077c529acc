//! The SQL guard's text checks, which run before any SQL parser sees a client's text
//! (`fjord_core::sqltext`): the name-chain rules, and the parse with a step budget in the generic
//! and the PostgreSQL dialect. Any text gets an answer without panicking, in a time its length
//! bounds: libFuzzer's `-timeout` reports a parse the step budget does not bound. (The guard's
//! checks of the parsed statement need DataFusion, too heavy to instrument here.)

#![no_main]

use fjord_core::sqltext::{MAX_NAME_CHAIN_DOTS, SqlDialect, check_name_chains, check_parse_work};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // longer text only slows the fuzzer down (serve.max_sql_bytes allows 256 KiB by default)
    if text.len() > 64 * 1024 {
        return;
    }
    let _ = check_name_chains(text, MAX_NAME_CHAIN_DOTS);
    let _ = check_parse_work(text, SqlDialect::Generic);
    let _ = check_parse_work(text, SqlDialect::Postgres);
});
