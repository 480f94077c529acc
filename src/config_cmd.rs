//! `fjord config check`: load a config the way every command does and print every problem.

use std::path::Path;
use std::process::ExitCode;

use fjord_core::config::Config;

/// Validates `path` plus the environment; prints a summary (and the effective config with `print`).
pub fn check(path: Option<&Path>, print: bool) -> ExitCode {
    match Config::load_from_env(path) {
        Ok(config) => {
            let source = path.map_or("defaults and environment".to_owned(), |p| {
                p.display().to_string()
            });
            let lots = config.lots_registry().map(|r| r.len()).unwrap_or(0);
            println!(
                "config OK: {source} ({} mapping rule(s), {lots} registered lot(s), windows {})",
                config.mapping.len(),
                config
                    .stream
                    .windows
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if print {
                match toml::to_string_pretty(&config) {
                    Ok(text) => println!("\n{text}"),
                    Err(e) => {
                        eprintln!("cannot print the config: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::FAILURE
        }
    }
}
