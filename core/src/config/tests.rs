//! Loading, overriding and validating configs, and reporting every problem at once.

use std::path::{Path, PathBuf};

use super::*;
use crate::duration::Duration;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

#[test]
fn no_file_gives_valid_defaults() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c, Config::default());
    assert!(c.validate().is_empty());
    assert_eq!(
        c.stream.windows,
        vec![Duration::from_mins(1), Duration::from_mins(10)]
    );
    assert_eq!(c.kafka.topic("readings"), "fjord.readings");
    assert_eq!(c.mapping.len(), 2);
}

#[test]
fn the_example_config_loads_and_documents_the_defaults() {
    // read at run time, not compile time: a test binary built in another checkout sharing the
    // target directory must read this one
    let example = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("run through cargo"))
        .join("../fjord.example.toml");
    let c = Config::load(Some(&example), env(&[])).unwrap_or_else(|e| panic!("{e}"));
    let expected = Config {
        lots: c.lots.clone(),
        lots_file: c.lots_file.clone(),
        ..Config::default()
    };
    assert_eq!(c, expected, "fjord.example.toml must show the defaults");
    assert!(!c.lots.is_empty());
}

#[test]
fn three_mistakes_are_all_reported_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "fjord.toml",
        r#"
[kafka]
brokrs = "localhost:9092"
partitions = 0

[stream]
out_of_orderness = "five seconds"
"#,
    );
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems.len(), 3, "{text}");
    let f = path.display().to_string();
    assert_eq!(
        err.problems[0].location.as_deref(),
        Some(format!("{f}:3").as_str()),
        "{text}"
    );
    assert_eq!(err.problems[0].key, "kafka.brokrs");
    assert!(
        err.problems[0]
            .message
            .starts_with("unknown field `brokrs`, expected one of"),
        "{text}"
    );
    assert_eq!(
        err.problems[1].location.as_deref(),
        Some(format!("{f}:4").as_str()),
        "{text}"
    );
    assert_eq!(err.problems[1].key, "kafka.partitions");
    assert_eq!(err.problems[1].message, "must be at least 1");
    assert_eq!(
        err.problems[2].location.as_deref(),
        Some(format!("{f}:7").as_str()),
        "{text}"
    );
    assert_eq!(err.problems[2].key, "stream.out_of_orderness");
    assert!(
        err.problems[2]
            .message
            .contains("invalid duration \"five seconds\""),
        "{text}"
    );
    assert!(text.starts_with("3 problems in config"), "{text}");
}

#[test]
fn problems_inside_arrays_of_tables_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "fjord.toml",
        r#"
[[mapping]]
filter = "parking/+lot_id/+space_id"
topic = "readings"
key = "{lot_id}"

[[mapping]]
filter = "parking/+lot"
topic = "readings"
key = "{lot}"

[[lots]]
lot_id = "L1"
capacity = 0

[[lots]]
lot_id = "L2"
capacity = "many"
"#,
    );
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    let text = err.to_string();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"mapping[1].filter"), "{text}");
    assert!(keys.contains(&"lots[0]"), "{text}");
    assert!(keys.contains(&"lots[1].capacity"), "{text}");
    assert!(text.contains("must name a segment +space_id"), "{text}");
    assert!(text.contains("capacity must be at least 1"), "{text}");
}

#[test]
fn environment_overrides_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "fjord.toml", "[kafka]\nbrokers = \"a:1\"\n");
    let c = Config::load(
        Some(&path),
        env(&[
            ("FJORD__KAFKA__BROKERS", "b:2,c:3"),
            ("FJORD__KAFKA__PARTITIONS", "12"),
            ("FJORD__STREAM__WINDOWS", r#"["30s", "5m"]"#),
            ("FJORD__STREAM__IDLE_AFTER", "20s"),
            ("FJORD__LOG__FORMAT", "json"),
            ("FJORD__KAFKA__OPTIONS__SECURITY.PROTOCOL", "SSL"),
            ("FJORD_TANSU", "/not/config"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.kafka.brokers, "b:2,c:3");
    assert_eq!(c.kafka.partitions, 12);
    assert_eq!(
        c.stream.windows,
        vec![Duration::from_secs(30), Duration::from_mins(5)]
    );
    assert_eq!(c.stream.idle_after, Duration::from_secs(20));
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(
        c.kafka.options.get("security.protocol").map(String::as_str),
        Some("SSL")
    );
}

#[test]
fn bad_overrides_name_the_variable() {
    let err = Config::load(
        None,
        env(&[
            ("FJORD__STREAM__IDLE_AFTER", "soon"),
            ("FJORD__KAFKA__BROKER", "x:1"),
            ("FJORD__STREAM__WINDOWS__X", "1"),
        ]),
    )
    .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems.len(), 3, "{text}");
    let locs: Vec<&str> = err
        .problems
        .iter()
        .filter_map(|p| p.location.as_deref())
        .collect();
    assert!(locs.contains(&"FJORD__STREAM__IDLE_AFTER"), "{text}");
    assert!(locs.contains(&"FJORD__KAFKA__BROKER"), "{text}");
    assert!(locs.contains(&"FJORD__STREAM__WINDOWS__X"), "{text}");
}

#[test]
fn semantic_checks_cover_windows_addresses_and_urls() {
    let mut c = Config::default();
    c.stream.windows = vec![
        Duration::from_secs(7),
        Duration::from_mins(1),
        Duration::from_mins(1),
    ];
    c.serve.pg_listen = c.serve.http_listen;
    c.lake.url = Some("relative/lake".into());
    c.mqtt.url = "http://x".into();
    c.kafka.brokers = "nohost".into();
    let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "kafka.brokers",
            "mqtt.url",
            "stream.windows[0]",
            "stream.windows[2]",
            "lake.url",
            "serve.pg_listen"
        ]
    );
}

#[test]
fn syntax_errors_point_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "fjord.toml",
        "[kafka]\nbrokers = \"unterminated\n",
    );
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    let p = &err.problems[0];
    assert_eq!(
        p.location.as_deref(),
        Some(format!("{}:2", path.display()).as_str())
    );
    assert!(p.message.starts_with("not valid TOML"), "{p}");
}

#[test]
fn lots_file_rows_are_checked_with_the_config() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "lots.csv",
        "lot_id,name,zone,capacity,lat,lon\nL1,A,z,10,0,0\nL2,B,z,-4,0,0\n",
    );
    let path = write(
        dir.path(),
        "fjord.toml",
        "lots_file = \"lots.csv\"\n[log]\nlevel = \"info\"\n",
    );
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems.len(), 1, "{text}");
    assert!(text.contains("lots.csv:3"), "{text}");
    assert!(
        text.contains("capacity must be a positive integer, got \"-4\""),
        "{text}"
    );

    write(
        dir.path(),
        "lots.csv",
        "lot_id,name,zone,capacity,lat,lon\nL1,A,z,10,0,0\n",
    );
    let c = Config::load(Some(&path), env(&[])).unwrap();
    assert_eq!(c.lots_registry().unwrap().capacity("L1"), Some(10));
}

#[test]
fn alert_rules_and_webhooks_are_checked_at_load_with_the_position_of_a_bad_expression() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "fjord.toml",
        r#"
[alerts.lot_full]
fire_at = 0.8
resolve_at = 0.9

[[alerts.rules]]
name = "centre_full"
expr = "occupancy_ratio > 0.95 AND zon = 'centre'"

[[alerts.rules]]
name = "quiet"
on = "window"
window = "5m"
expr = "readings = 0"

[[alerts.webhooks]]
name = "ops"
url = "ftp://example.org"
secret = "short"
rules = ["centre_full", "nope"]
"#,
    );
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    let text = err.to_string();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "alerts.lot_full.resolve_at",
            "alerts.rules[0].expr",
            "alerts.rules[1].window",
            "alerts.webhooks[0].url",
            "alerts.webhooks[0].secret",
            "alerts.webhooks[0].rules",
        ],
        "{text}"
    );
    assert!(
        err.problems[1]
            .message
            .starts_with("unknown column \"zon\"; known columns: lot_id, space_id,"),
        "{text}"
    );
    assert!(
        err.problems[1].message.contains("(line 1, column 28)"),
        "{text}"
    );
    assert!(
        err.problems[2]
            .message
            .contains("5m is not one of stream.windows (1m, 10m)"),
        "{text}"
    );
    assert!(
        err.problems[5]
            .message
            .contains("no rule is named \"nope\""),
        "{text}"
    );
}

#[test]
fn a_short_or_empty_token_is_refused() {
    for (token, ok) in [
        ("", false),
        ("short-token", false),
        ("0123456789abcdef", true),
    ] {
        let d = tempfile::tempdir().unwrap();
        let path = write(
            d.path(),
            "c.toml",
            &format!("[auth]\ntoken = \"{token}\"\n"),
        );
        let r = Config::load(Some(&path), Vec::<(String, String)>::new());
        match (r, ok) {
            (Ok(_), true) => {}
            (Err(e), false) => {
                let text = e.to_string();
                assert!(
                    text.contains("auth.token") && text.contains("at least 16"),
                    "{text}"
                );
            }
            (r, _) => panic!("{token:?}: {r:?}"),
        }
    }
}
