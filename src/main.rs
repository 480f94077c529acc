//! The `fjord` binary: parses the command line and hands each command to its crate.

mod batch_cmd;
mod cli;
mod commands;
mod config_cmd;
mod demo;
mod lifecycle;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, ConfigCommand};

/// mimalloc instead of glibc malloc: the import, the stream processor and DataFusion allocate on
/// several threads at once, where glibc's arenas cost system time (docs/development.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = cli.config.as_deref();
    match cli.command {
        Command::Config(ConfigCommand::Check { print }) => {
            Ok(config_cmd::check(config_path, print))
        }
        Command::Demo(args) => commands::demo(config_path, args),
        Command::Bridge => commands::bridge(config_path),
        Command::Stream(args) => commands::stream(config_path, &args),
        Command::Simulate(args) => commands::simulate(config_path, args),
        Command::Batch(args) => batch_cmd::command(config_path, args),
        Command::Sql(args) => commands::sql(config_path, &args),
        Command::Serve => commands::serve(config_path),
    }
}
