//! End-to-end tests of the `fjord` binary with real brokers and real clients, one test binary
//! (each file was its own binary; linking DataFusion and delta-rs once instead of twelve times
//! is most of what a cold CI run saves). Run one file with `cargo test --test e2e security::`.

mod alert_delivery_crash;
mod analyst_sql;
mod batch_crash;
mod bridge_crash;
mod cli_and_demo;
mod dashboard;
mod demo_live;
mod deploy;
mod forecast;
mod security;
mod serve;
mod simulate;
mod sql_cli;
mod stream_crash;
mod stream_eos;
