//! The `fjord` binary: parses the command line and hands each command to its crate.

mod cli;
mod config_cmd;
mod demo;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, ConfigCommand};
use fjord_core::config::Config;

/// Exit status of a command whose component has not been built yet (sysexits' EX_UNAVAILABLE).
const NOT_BUILT: u8 = 69;

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
    match cli.command {
        Command::Config(ConfigCommand::Check { print }) => {
            Ok(config_cmd::check(cli.config.as_deref(), print))
        }
        Command::Demo(args) => {
            let config = match Config::load_from_env(cli.config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            fjord_core::telemetry::init_tracing(&config.log)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(demo::run(args, config))?;
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprintln!(
                "fjord {}: not built yet. This command arrives with its component; \
                 `fjord demo` shows what runs today.",
                other.name()
            );
            Ok(ExitCode::from(NOT_BUILT))
        }
    }
}
