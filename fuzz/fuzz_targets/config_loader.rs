//! The config loader: any file text, with any `FJORD__…` overrides, loads or is refused with a list
//! of located problems. Lines `FJORD__KEY=value` at the top of the input become environment
//! overrides; the rest is the file. Lines naming the lots file are dropped: which file to read is
//! the operator's choice, and reading one (bounded, see `fjord_core::files`) is not what is fuzzed.

#![no_main]

use fjord_core::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let text: String = text
        .split_inclusive('\n')
        .filter(|l| !l.to_ascii_lowercase().contains("lots_file"))
        .collect();
    let text = text.as_str();
    let mut env = Vec::new();
    let mut rest = text;
    while let Some(line) = rest.strip_prefix("FJORD__") {
        let (line, after) = line.split_once('\n').unwrap_or((line, ""));
        if let Some((k, v)) = line.split_once('=') {
            env.push((format!("FJORD__{k}"), v.to_owned()));
        }
        rest = after;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("fjord.toml");
    std::fs::write(&path, rest).expect("write the config");
    match Config::load(Some(&path), env) {
        Ok(c) => assert!(c.validate().is_empty(), "a loaded config has no problems"),
        Err(e) => assert!(!e.problems.is_empty(), "a refusal names its problems"),
    }
});
