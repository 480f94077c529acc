//! The lots registry (docs/contract.md §3.4): `lot_id,name,zone,capacity,lat,lon`, from `lots.csv` or
//! `[[lots]]` in the config, exposed as the SQL table `lots`.
//!
//! A lot seen in data but absent from the registry gets, as capacity, the number of distinct spaces
//! seen so far; that fallback lives with the state that counts spaces (the stream and batch
//! layers), this module only answers for registered lots.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One registered lot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotRecord {
    /// Lot id, as in the MQTT topic.
    pub lot_id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Zone (district) the lot belongs to.
    #[serde(default)]
    pub zone: String,
    /// Number of spaces.
    pub capacity: u32,
    /// Latitude in degrees, if known.
    #[serde(default)]
    pub lat: Option<f64>,
    /// Longitude in degrees, if known.
    #[serde(default)]
    pub lon: Option<f64>,
}

impl LotRecord {
    /// What is wrong with this record, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.lot_id.trim().is_empty() {
            p.push("lot_id may not be empty".to_owned());
        } else if self.lot_id.contains(['/', '+', '#']) {
            p.push(format!(
                "lot_id {:?} may not contain '/', '+' or '#' (it is an MQTT topic segment)",
                self.lot_id
            ));
        }
        if self.capacity == 0 {
            p.push(format!(
                "lot {:?}: capacity must be at least 1",
                self.lot_id
            ));
        }
        if let Some(lat) = self.lat.filter(|l| !(-90.0..=90.0).contains(l)) {
            p.push(format!(
                "lot {:?}: lat must be between -90 and 90, got {lat}",
                self.lot_id
            ));
        }
        if let Some(lon) = self.lon.filter(|l| !(-180.0..=180.0).contains(l)) {
            p.push(format!(
                "lot {:?}: lon must be between -180 and 180, got {lon}",
                self.lot_id
            ));
        }
        p
    }
}

/// All registered lots by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LotsRegistry {
    lots: Vec<LotRecord>,
    by_id: HashMap<String, usize>,
}

impl LotsRegistry {
    /// Builds the registry, refusing invalid records and duplicate ids.
    pub fn new(records: Vec<LotRecord>) -> Result<Self> {
        let mut problems = Vec::new();
        let mut by_id = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            problems.extend(r.problems());
            if by_id.insert(r.lot_id.clone(), i).is_some() {
                problems.push(format!("lot {:?} is registered twice", r.lot_id));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Lots(problems.join("; ")));
        }
        Ok(Self {
            lots: records,
            by_id,
        })
    }

    /// Reads a lots CSV with header `lot_id,name,zone,capacity,lat,lon`, reporting every bad row.
    pub fn read_csv_file(path: &Path) -> Result<Vec<LotRecord>> {
        let text =
            crate::files::read_text(path, crate::files::MAX_TEXT_FILE_BYTES).map_err(|source| {
                Error::Io {
                    context: format!("reading lots file {}", path.display()),
                    source,
                }
            })?;
        Self::parse_csv(&text).map_err(|problems| Error::LotsCsv {
            path: path.to_path_buf(),
            problems,
        })
    }

    /// Parses lots CSV text; on failure returns (line, message) for every bad row.
    pub fn parse_csv(text: &str) -> std::result::Result<Vec<LotRecord>, Vec<(usize, String)>> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        let expected = ["lot_id", "name", "zone", "capacity", "lat", "lon"];
        match reader.headers() {
            Ok(h) if h.iter().eq(expected) => {}
            Ok(h) => {
                return Err(vec![(
                    1,
                    format!(
                        "the header must be `{}`, got `{}`",
                        expected.join(","),
                        h.iter().collect::<Vec<_>>().join(",")
                    ),
                )]);
            }
            Err(e) => return Err(vec![(1, format!("unreadable header: {e}"))]),
        }
        let mut records = Vec::new();
        let mut problems = Vec::new();
        for row in reader.records() {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line() as usize);
                    problems.push((line, format!("unreadable row: {e}")));
                    continue;
                }
            };
            let line = row.position().map_or(0, |p| p.line() as usize);
            match parse_row(&row) {
                Ok(r) => {
                    for p in r.problems() {
                        problems.push((line, p));
                    }
                    records.push(r);
                }
                Err(msgs) => problems.extend(msgs.into_iter().map(|m| (line, m))),
            }
        }
        if problems.is_empty() {
            Ok(records)
        } else {
            Err(problems)
        }
    }

    /// The record of `lot_id`, if registered.
    pub fn get(&self, lot_id: &str) -> Option<&LotRecord> {
        self.by_id.get(lot_id).map(|&i| &self.lots[i])
    }

    /// Registered capacity of `lot_id`.
    pub fn capacity(&self, lot_id: &str) -> Option<u32> {
        self.get(lot_id).map(|l| l.capacity)
    }

    /// All lots, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &LotRecord> {
        self.lots.iter()
    }

    /// Number of registered lots.
    pub fn len(&self) -> usize {
        self.lots.len()
    }

    /// True when no lot is registered.
    pub fn is_empty(&self) -> bool {
        self.lots.is_empty()
    }
}

fn parse_row(row: &csv::StringRecord) -> std::result::Result<LotRecord, Vec<String>> {
    let mut errs = Vec::new();
    let field = |i: usize| row.get(i).unwrap_or("");
    let capacity = match field(3).parse::<u32>() {
        Ok(c) => c,
        Err(_) => {
            errs.push(format!(
                "capacity must be a positive integer, got {:?}",
                field(3)
            ));
            0
        }
    };
    let mut coord = |i: usize, name: &str| -> Option<f64> {
        let s = field(i);
        if s.is_empty() {
            return None;
        }
        match s.parse::<f64>() {
            Ok(v) => Some(v),
            Err(_) => {
                errs.push(format!("{name} must be a number of degrees, got {s:?}"));
                None
            }
        }
    };
    let lat = coord(4, "lat");
    let lon = coord(5, "lon");
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(LotRecord {
        lot_id: field(0).to_owned(),
        name: field(1).to_owned(),
        zone: field(2).to_owned(),
        capacity,
        lat,
        lon,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_csv_and_answers_capacity() {
        let text = "lot_id,name,zone,capacity,lat,lon\n\
                    L1,Central Station,centre,120,59.91,10.75\n\
                    # a comment\n\
                    L2, Harbour ,port,40,,\n";
        let reg = LotsRegistry::new(LotsRegistry::parse_csv(text).unwrap()).unwrap();
        assert_eq!(reg.len(), 2);
        assert_eq!(reg.capacity("L1"), Some(120));
        assert_eq!(reg.get("L2").unwrap().name, "Harbour");
        assert_eq!(reg.get("L2").unwrap().lat, None);
        assert_eq!(reg.capacity("L9"), None);
    }

    #[test]
    fn reports_every_bad_row_with_its_line() {
        let text = "lot_id,name,zone,capacity,lat,lon\n\
                    L1,A,z,ten,0,0\n\
                    L2,B,z,10,95,0\n\
                    L3,C,z,0,0,0\n\
                    L4,D,z,5,x,0\n";
        let problems = LotsRegistry::parse_csv(text).unwrap_err();
        let lines: Vec<usize> = problems.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3, 4, 5], "{problems:?}");
        assert!(
            problems[0]
                .1
                .contains("capacity must be a positive integer, got \"ten\"")
        );
        assert!(
            problems[1]
                .1
                .contains("lat must be between -90 and 90, got 95")
        );
        assert!(problems[2].1.contains("capacity must be at least 1"));
        assert!(problems[3].1.contains("lat must be a number of degrees"));
    }

    #[test]
    fn refuses_wrong_header_and_duplicates() {
        let e = LotsRegistry::parse_csv("id,capacity\nL1,3\n").unwrap_err();
        assert!(
            e[0].1
                .starts_with("the header must be `lot_id,name,zone,capacity,lat,lon`")
        );
        let r = LotRecord {
            lot_id: "L1".into(),
            name: String::new(),
            zone: String::new(),
            capacity: 3,
            lat: None,
            lon: None,
        };
        let e = LotsRegistry::new(vec![r.clone(), r])
            .unwrap_err()
            .to_string();
        assert!(e.contains("lot \"L1\" is registered twice"), "{e}");
    }
}
