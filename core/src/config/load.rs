//! Loading a [`Config`] so that every problem is reported at once.
//!
//! serde stops at the first error, so loading repeats deserialization: each error is recorded with
//! its key path and the offending key is taken out of the tree before the next attempt (its default
//! is used). When the tree finally deserializes, [`Config::validate`] adds the semantic problems and
//! the lots file is read. Each problem is then located: at the environment variable that set the key,
//! or at its line in the file.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_path_to_error::Segment;

use super::Config;
use crate::lots::LotsRegistry;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where it is: `fjord.toml:12`, `FJORD__KAFKA__BROKERS` or `lots.csv:4`; `None` for defaults.
    pub location: Option<String>,
    /// The key path, e.g. `stream.windows[1]`.
    pub key: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found while loading a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The config file, if any.
    pub file: Option<PathBuf>,
    /// The problems, in file order where known.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        let what = if n == 1 { "problem" } else { "problems" };
        match &self.file {
            Some(file) => writeln!(f, "{n} {what} in config {}:", file.display())?,
            None => writeln!(f, "{n} {what} in the configuration:")?,
        }
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn parse_path(s: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in s.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            out.push(Seg::Key(rest[..open].to_owned()));
            rest = &rest[open..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let close = stripped.find(']').unwrap_or(stripped.len());
                if let Ok(i) = stripped[..close].parse() {
                    out.push(Seg::Index(i));
                }
                rest = stripped.get(close + 1..).unwrap_or("");
            }
        } else {
            out.push(Seg::Key(rest.to_owned()));
        }
    }
    out
}

struct Located {
    path: Vec<Seg>,
    message: String,
    location: Option<String>,
}

pub(super) fn load<I>(path: Option<&Path>, env: I) -> Result<Config, ConfigErrors>
where
    I: IntoIterator<Item = (String, String)>,
{
    let fail = |problems| ConfigErrors {
        file: path.map(Path::to_path_buf),
        problems,
    };
    let file_label = path.map(|p| p.display().to_string());
    let text = match path {
        Some(p) => crate::files::read_text(p, crate::files::MAX_TEXT_FILE_BYTES).map_err(|e| {
            fail(vec![ConfigProblem {
                location: file_label.clone(),
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?,
        None => String::new(),
    };
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e.span().map(|s| line_of(&text, s.start));
        fail(vec![ConfigProblem {
            location: Some(format!(
                "{}{}",
                file_label.as_deref().unwrap_or("config"),
                line.map(|l| format!(":{l}")).unwrap_or_default()
            )),
            key: String::new(),
            message: format!("not valid TOML: {}", e.message()),
        }])
    })?;

    let mut problems: Vec<Located> = Vec::new();
    let overrides = apply_env(&mut table, env, &mut problems);
    let mut value = toml::Value::Table(table);
    let mut removed: Vec<Vec<Seg>> = Vec::new();
    let mut config = None;
    for _ in 0..256 {
        match serde_path_to_error::deserialize::<_, Config>(value.clone()) {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(err) => {
                let mut at: Vec<Seg> = err
                    .path()
                    .iter()
                    .filter_map(|s| match s {
                        Segment::Map { key } => Some(Seg::Key(key.clone())),
                        Segment::Seq { index } => Some(Seg::Index(*index)),
                        _ => None,
                    })
                    .collect();
                let message = err.into_inner().message().to_owned();
                if let Some(field) = backticked(&message, "unknown field `")
                    && at.last() != Some(&Seg::Key(field.to_owned()))
                {
                    at.push(Seg::Key(field.to_owned()));
                }
                let consequence = backticked(&message, "missing field `").is_some_and(|field| {
                    let mut child = at.clone();
                    child.push(Seg::Key(field.to_owned()));
                    removed.contains(&child)
                });
                if !consequence {
                    problems.push(Located {
                        path: at.clone(),
                        message: tidy(&message),
                        location: None,
                    });
                }
                if at.is_empty() || !remove(&mut value, &at) {
                    break;
                }
                removed.push(at);
            }
        }
    }

    // Keys that failed to deserialize were replaced by their (valid) defaults, so the semantic checks
    // of everything else still run.
    let mut config = config.unwrap_or_default();
    for (key, message) in config.validate() {
        problems.push(Located {
            path: parse_path(&key),
            message,
            location: None,
        });
    }
    if let Some(file) = config.lots_file.clone() {
        let resolved = match (file.is_relative(), path.and_then(Path::parent)) {
            (true, Some(dir)) => dir.join(&file),
            _ => file,
        };
        match LotsRegistry::read_csv_file(&resolved) {
            Ok(records) => {
                let mut all = config.lots.clone();
                all.extend(records);
                if let Err(e) = LotsRegistry::new(all) {
                    problems.push(Located {
                        path: vec![Seg::Key("lots_file".into())],
                        message: e.to_string(),
                        location: None,
                    });
                }
            }
            Err(crate::Error::LotsCsv { problems: rows, .. }) => {
                for (row_loc, msg) in rows {
                    problems.push(Located {
                        path: Vec::new(),
                        message: msg,
                        location: Some(format!("{}:{row_loc}", resolved.display())),
                    });
                }
            }
            Err(e) => problems.push(Located {
                path: vec![Seg::Key("lots_file".into())],
                message: e.to_string(),
                location: None,
            }),
        }
        config.lots_file = Some(resolved);
    }

    if problems.is_empty() {
        return Ok(config);
    }
    let spans = toml::de::DeTable::parse(&text).ok();
    let mut out: Vec<(usize, ConfigProblem)> = problems
        .into_iter()
        .map(|p| {
            let env_var = overrides
                .iter()
                .find(|(ov, _)| {
                    p.path.starts_with(ov) || (!p.path.is_empty() && ov.starts_with(&p.path))
                })
                .map(|(_, var)| var.clone());
            let line = spans.as_ref().and_then(|t| span_line(&text, t, &p.path));
            let location = p.location.or(env_var).or_else(|| {
                file_label
                    .as_ref()
                    .map(|f| line.map_or_else(|| f.clone(), |l| format!("{f}:{l}")))
            });
            (
                line.unwrap_or(usize::MAX),
                ConfigProblem {
                    location,
                    key: render(&p.path),
                    message: p.message,
                },
            )
        })
        .collect();
    out.sort_by_key(|(line, _)| *line);
    Err(fail(out.into_iter().map(|(_, p)| p).collect()))
}

/// Applies `FJORD__SECTION__KEY=value` overrides; returns (key path, variable name) of each.
fn apply_env<I>(
    table: &mut toml::Table,
    env: I,
    problems: &mut Vec<Located>,
) -> Vec<(Vec<Seg>, String)>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("FJORD__"))
        .collect();
    vars.sort();
    let mut applied = Vec::new();
    for (var, raw) in vars {
        let keys: Vec<String> = var["FJORD__".len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        let path: Vec<Seg> = keys.iter().cloned().map(Seg::Key).collect();
        if keys.iter().any(String::is_empty) {
            problems.push(Located {
                path,
                message: "an override needs a key after each '__'".into(),
                location: Some(var),
            });
            continue;
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        if set_path(table, &keys, value) {
            applied.push((path, var));
        } else {
            problems.push(Located {
                path,
                message: "the override addresses a key inside a value that is not a section".into(),
                location: Some(var),
            });
        }
    }
    applied
}

/// Sets `keys` (a path of table keys) to `value`, creating tables on the way; false when a key on the
/// way holds something other than a table.
fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) -> bool {
    match keys {
        [] => false,
        [last] => {
            table.insert(last.clone(), value);
            true
        }
        [first, rest @ ..] => match table
            .entry(first.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(t) => set_path(t, rest, value),
            _ => false,
        },
    }
}

fn backticked<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// Makes serde's wording friendlier: `expected i32` → `expected an integer`.
fn tidy(message: &str) -> String {
    message
        .replace("expected i32", "expected an integer")
        .replace("expected u32", "expected a non-negative integer")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected a boolean", "expected true or false")
}

fn remove(value: &mut toml::Value, path: &[Seg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for seg in parents {
        node = match (seg, node) {
            (Seg::Key(k), toml::Value::Table(t)) => match t.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Seg::Index(i), toml::Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Seg::Key(k), toml::Value::Table(t)) => t.remove(k).is_some(),
        (Seg::Index(i), toml::Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line of the deepest part of `path` present in the file.
fn span_line(
    text: &str,
    root: &toml::Spanned<toml::de::DeTable<'_>>,
    path: &[Seg],
) -> Option<usize> {
    use toml::de::DeValue;
    let mut best: Option<usize> = None;
    let mut table: Option<&toml::de::DeTable<'_>> = Some(root.get_ref());
    let mut array: Option<&toml::de::DeArray<'_>> = None;
    for seg in path {
        let item = match seg {
            Seg::Key(k) => table.and_then(|t| {
                t.iter()
                    .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                    .map(|(key, v)| (key.span().start, v))
            }),
            Seg::Index(i) => array.and_then(|a| a.get(*i).map(|v| (v.span().start, v))),
        };
        let Some((start, v)) = item else { break };
        best = Some(line_of(text, start));
        table = None;
        array = None;
        match v.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => {}
        }
    }
    best
}
