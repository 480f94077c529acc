//! The ready analyst queries of `queries/sql/` (each file starts with a comment saying what it
//! answers), compiled in so `fjord` and its benchmark can run them by name.

/// (name, SQL) of every file in `queries/sql/`.
pub const QUERIES: [(&str, &str); 6] = [
    (
        "occupancy_by_hour_and_weekday",
        include_str!("../sql/occupancy_by_hour_and_weekday.sql"),
    ),
    ("peak_hours", include_str!("../sql/peak_hours.sql")),
    ("turnover", include_str!("../sql/turnover.sql")),
    ("average_stay", include_str!("../sql/average_stay.sql")),
    ("sensor_health", include_str!("../sql/sensor_health.sql")),
    (
        "zone_utilisation",
        include_str!("../sql/zone_utilisation.sql"),
    ),
];

/// The SQL of the query named `name`.
pub fn query(name: &str) -> Option<&'static str> {
    QUERIES.iter().find(|(n, _)| *n == name).map(|(_, q)| *q)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_is_listed_and_says_what_it_answers() {
        // at run time: a test binary built in another checkout sharing the target dir reads this one
        let dir = std::path::Path::new(
            &std::env::var_os("CARGO_MANIFEST_DIR").expect("run through cargo"),
        )
        .join("sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".sql")
                    .to_owned()
            })
            .collect();
        files.sort();
        let mut listed: Vec<&str> = super::QUERIES.iter().map(|(n, _)| *n).collect();
        listed.sort();
        assert_eq!(files, listed);
        for (name, sql) in super::QUERIES {
            assert!(sql.starts_with("-- "), "{name} lacks its header comment");
            assert!(
                sql.contains("Answers"),
                "{name} does not say what it answers"
            );
            assert!(
                crate::guard::check(
                    sql,
                    &crate::exec::Limits::from_config(&fjord_core::config::ServeConfig::default())
                        .sql
                )
                .is_ok(),
                "{name} is not a read-only query"
            );
        }
    }
}
