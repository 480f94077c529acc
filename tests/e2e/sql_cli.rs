//! `fjord sql` against a lake filled by `fjord batch import`: results as a table, CSV and JSON, the
//! lots registry as a table, and every statement that is not a query refused with its name.

use std::process::{Command, Output};

use fjord_testkit::temp_dir;

fn fjord(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("FJORD_CONFIG")
        .output()
        .expect("run fjord")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn sql_reads_the_lake_in_three_formats_and_refuses_writes() {
    let dir = temp_dir();
    let config = dir.path().join("fjord.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"warn\"\n\n[lake]\nurl = \"file://{}/lake\"\n\n\
             [[lots]]\nlot_id = \"central\"\nname = \"Central\"\nzone = \"centre\"\ncapacity = 10\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let data = dir.path().join("readings.jsonl");
    let mut lines = String::new();
    for i in 0..30 {
        let lot = if i % 3 == 0 { "harbour" } else { "central" };
        lines.push_str(&format!(
            "{{\"lot_id\":\"{lot}\",\"space_id\":\"S{i}\",\"ts\":{},\"occupied\":true}}\n",
            1_795_255_200_000_i64 + i * 1000
        ));
    }
    std::fs::write(&data, lines).unwrap();
    let import = fjord(&config, &["batch", "import", data.to_str().unwrap()]);
    assert!(import.status.success(), "{}", stderr(&import));

    let q = "SELECT lot_id, count(*) AS n FROM readings GROUP BY lot_id ORDER BY lot_id";
    let csv = fjord(&config, &["sql", "--format", "csv", q]);
    assert!(csv.status.success(), "{}", stderr(&csv));
    assert_eq!(stdout(&csv), "lot_id,n\ncentral,20\nharbour,10\n\n");
    let json = fjord(&config, &["sql", "--format", "json", q]);
    assert_eq!(
        stdout(&json).trim(),
        r#"[{"lot_id":"central","n":20},{"lot_id":"harbour","n":10}]"#
    );
    let table = fjord(&config, &["sql", q]);
    assert!(
        stdout(&table).contains("| central | 20 |"),
        "{}",
        stdout(&table)
    );
    let lots = fjord(
        &config,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT lot_id, zone, capacity FROM lots",
        ],
    );
    assert_eq!(stdout(&lots), "lot_id,zone,capacity\ncentral,centre,10\n\n");

    for (sql, name) in [
        ("DROP TABLE readings", "DROP TABLE"),
        ("INSERT INTO readings SELECT * FROM readings", "INSERT INTO"),
        ("COPY readings TO '/tmp/out.csv'", "COPY … TO"),
    ] {
        let out = fjord(&config, &["sql", sql]);
        assert_eq!(out.status.code(), Some(1), "{sql}");
        let err = stderr(&out);
        assert!(
            err.contains("read-only") && err.contains(name),
            "{sql}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
    let bad = fjord(&config, &["sql", "SELECT nope FROM readings"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("nope"), "{}", stderr(&bad));
    // the data is untouched
    let count = fjord(
        &config,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM readings",
        ],
    );
    assert_eq!(stdout(&count), "n\n30\n\n");
}
