//! `fjord batch import FILE…`: backfills historical readings from JSON-lines or CSV files into
//! `readings` — the batch data source of the Lambda architecture — deduplicated like Kafka input.
//!
//! Every line goes through the same decoder as MQTT payloads, so the same rules hold; the ids come
//! from the line itself (`lot_id`, `space_id`) and `ts` is required (a backfill has no receive
//! time). Lines that do not decode go to `quarantine` with their byte offset. Each commit records
//! the byte offset it reached as the Delta transaction `fjord:import:<file fingerprint>`, so an
//! interrupted import resumes where it stopped and a repeated one adds nothing.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use fjord_core::config::Config;
use fjord_core::decode::{DecodeOptions, decode_document};
use fjord_core::model::TsSource;
use fjord_core::time::now_ms;

use crate::commit::{self, Appended};
use crate::error::{Error, Result};
use crate::lake::{Lake, Table};
use crate::rows::{Origin, QuarantineRow, ReadingRow, quarantine_batch};

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Lines (records) read.
    pub lines: u64,
    /// Rows added to `readings`.
    pub rows: u64,
    /// Lines dropped as duplicates.
    pub duplicates: u64,
    /// Lines sent to `quarantine`.
    pub quarantined: u64,
    /// Input bytes read.
    pub input_bytes: u64,
    /// Delta commits.
    pub commits: u32,
    /// Data files written.
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
}

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonLines,
    /// A header line, then one reading per line.
    Csv,
}

impl Format {
    /// By extension: `.csv` is CSV, anything else JSON lines.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
            _ => Format::JsonLines,
        }
    }
}

/// A decoded line: a row, or why it was refused.
enum Line {
    Row(ReadingRow),
    Refused { reason: &'static str, error: String },
}

/// Decodes one JSON object (a line of a JSON-lines file, or a converted CSV record).
fn decode_line(json: &[u8], now: i64, opts: &DecodeOptions) -> Line {
    match decode_document(json, now, opts) {
        Ok(reading) if reading.ts_source == TsSource::Received => Line::Refused {
            reason: "missing_ts",
            error: "an imported reading needs a \"ts\" field (there is no receive time to use)"
                .into(),
        },
        Ok(reading) => Line::Row(ReadingRow {
            reading,
            origin: Origin::default(),
        }),
        Err(e) => Line::Refused {
            reason: e.reason(),
            error: e.to_string(),
        },
    }
}

/// A block of input: lines (ranges of `data`) with their byte offsets in the file. One block is
/// refilled for the whole file, so its buffers are allocated once: fresh buffers per block cost
/// more in page faults (the kernel zeroing new pages) than the copying itself.
#[derive(Default)]
struct Block {
    data: Vec<u8>,
    lines: Vec<(u64, std::ops::Range<usize>)>,
    end: u64,
}

impl Block {
    fn line(&self, i: usize) -> &[u8] {
        &self.data[self.lines[i].1.clone()]
    }

    fn clear(&mut self) {
        self.data.clear();
        self.lines.clear();
    }
}

/// What one decoding thread made of its share of a block.
#[derive(Default)]
struct Share {
    rows: Vec<ReadingRow>,
    /// Line index in the block, why, and the error text.
    refused: Vec<(usize, &'static str, String)>,
}

/// Decodes a block on every core, each thread a contiguous share of the lines straight into rows.
fn decode_block(
    block: &Block,
    opts: &DecodeOptions,
    source: &str,
) -> (Vec<ReadingRow>, Vec<QuarantineRow>) {
    let now = now_ms();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let per = block.lines.len().div_ceil(threads).max(1);
    let data = &block.data;
    let shares: Vec<Share> = std::thread::scope(|s| {
        let handles: Vec<_> = block
            .lines
            .chunks(per)
            .enumerate()
            .map(|(c, chunk)| {
                s.spawn(move || {
                    let mut share = Share {
                        rows: Vec::with_capacity(chunk.len()),
                        refused: Vec::new(),
                    };
                    for (i, (_, range)) in chunk.iter().enumerate() {
                        match decode_line(&data[range.clone()], now, opts) {
                            Line::Row(r) => share.rows.push(r),
                            Line::Refused { reason, error } => {
                                share.refused.push((c * per + i, reason, error));
                            }
                        }
                    }
                    share
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut rows = Vec::with_capacity(shares.iter().map(|s| s.rows.len()).sum());
    let mut refused = Vec::new();
    for share in shares {
        rows.extend(share.rows);
        for (i, reason, error) in share.refused {
            refused.push(QuarantineRow {
                raw: block.line(i).to_vec(),
                reason: reason.into(),
                error,
                source: source.to_owned(),
                origin: Origin {
                    offset: i64::try_from(block.lines[i].0).ok(),
                    ..Origin::default()
                },
                seen_at: now,
            });
        }
    }
    (rows, refused)
}

/// Refills `block` with the next at most `max` JSON lines from `reader` (at byte `pos`).
fn read_json_block(
    reader: &mut impl BufRead,
    pos: u64,
    max: usize,
    block: &mut Block,
) -> std::io::Result<()> {
    block.clear();
    let (data, lines) = (&mut block.data, &mut block.lines);
    let mut at = pos;
    while lines.len() < max {
        let from = data.len();
        let n = reader.read_until(b'\n', data)?;
        if n == 0 {
            break;
        }
        let start = at;
        at += n as u64;
        let mut to = data.len();
        while to > from && matches!(data[to - 1], b'\n' | b'\r') {
            to -= 1;
        }
        if data[from..to].iter().all(u8::is_ascii_whitespace) {
            data.truncate(from);
            continue;
        }
        lines.push((start, from..to));
    }
    block.end = at;
    Ok(())
}

/// Refills `block` with the next at most `max` CSV records, each converted to a JSON object.
fn read_csv_block(
    reader: &mut csv::Reader<File>,
    header: &[String],
    max: usize,
    end_of_file: u64,
    block: &mut Block,
) -> std::result::Result<(), csv::Error> {
    block.clear();
    let (data, lines) = (&mut block.data, &mut block.lines);
    let mut record = csv::StringRecord::new();
    let mut end = end_of_file;
    while lines.len() < max {
        if !reader.read_record(&mut record)? {
            break;
        }
        let start = record.position().map_or(0, |p| p.byte());
        let mut obj = serde_json::Map::new();
        for (name, value) in header.iter().zip(record.iter()) {
            if value.is_empty() {
                continue;
            }
            let v = match name.as_str() {
                "occupied" => match value {
                    "true" | "1" | "TRUE" | "True" => serde_json::Value::Bool(true),
                    "false" | "0" | "FALSE" | "False" => serde_json::Value::Bool(false),
                    other => serde_json::Value::String(other.to_owned()),
                },
                "ts" | "battery" => value
                    .parse::<i64>()
                    .map(serde_json::Value::from)
                    .unwrap_or_else(|_| serde_json::Value::String(value.to_owned())),
                _ => serde_json::Value::String(value.to_owned()),
            };
            obj.insert(name.clone(), v);
        }
        let from = data.len();
        // Serializing a map of strings, numbers and booleans cannot fail.
        let _ = serde_json::to_writer(&mut *data, &obj);
        lines.push((start, from..data.len()));
        end = reader.position().byte();
    }
    if lines.len() < max {
        end = end_of_file;
    }
    block.end = end;
    Ok(())
}

/// A fingerprint of a file: its size and its first 64 KiB.
fn file_id(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let size = f.metadata()?.len();
    let mut head = vec![0; 64 * 1024];
    let n = f.read(&mut head)?;
    head.truncate(n);
    let fp = crate::offsets::fingerprint(Some(&head), None, i64::try_from(size).ok());
    Ok(format!("fjord:import:{fp:016x}"))
}

/// Imports `paths` into `readings`.
pub async fn import(cfg: &Config, lake: &Lake, paths: &[PathBuf]) -> Result<ImportSummary> {
    let mut readings = lake.open(Table::Readings).await?;
    let mut quarantine = lake.open(Table::Quarantine).await?;
    let mut summary = ImportSummary::default();
    let opts = cfg.readings.decode_options();
    let max = cfg.batch.max_records_per_commit as usize;
    for path in paths {
        import_file(
            path,
            &opts,
            max,
            &mut readings,
            &mut quarantine,
            &mut summary,
        )
        .await?;
    }
    Ok(summary)
}

/// An open input file.
enum Reader {
    Json(BufReader<File>),
    Csv(csv::Reader<File>, Vec<String>),
}

/// A decoded block.
struct Decoded {
    lines: usize,
    end: u64,
    rows: Vec<ReadingRow>,
    refused: Vec<QuarantineRow>,
}

/// Reads and decodes blocks until the end of the file, handing them to `tx`.
#[allow(clippy::too_many_arguments)]
fn read_and_decode(
    mut reader: Reader,
    start: u64,
    size: u64,
    max: usize,
    opts: DecodeOptions,
    source: &str,
    shown: &str,
    tx: &tokio::sync::mpsc::Sender<Result<Decoded>>,
) {
    let mut pos = start;
    let mut block = Block::default();
    loop {
        let read = match &mut reader {
            Reader::Json(r) => read_json_block(r, pos, max, &mut block).map_err(|e| e.to_string()),
            Reader::Csv(r, header) => {
                read_csv_block(r, header, max, size, &mut block).map_err(|e| e.to_string())
            }
        };
        match read {
            Ok(()) => {}
            Err(reason) => {
                let _ = tx.blocking_send(Err(Error::Input {
                    path: shown.to_owned(),
                    reason,
                }));
                return;
            }
        };
        if block.lines.is_empty() && block.end <= pos {
            return;
        }
        let (rows, refused) = decode_block(&block, &opts, source);
        let last = block.lines.len() < max;
        let decoded = Decoded {
            lines: block.lines.len(),
            end: block.end,
            rows,
            refused,
        };
        pos = block.end;
        if tx.blocking_send(Ok(decoded)).is_err() || last {
            return;
        }
    }
}

async fn import_file(
    path: &Path,
    opts: &DecodeOptions,
    max: usize,
    readings: &mut DeltaTable,
    quarantine: &mut DeltaTable,
    summary: &mut ImportSummary,
) -> Result<()> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| Error::Input {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let id = file_id(path).map_err(io)?;
    let size = std::fs::metadata(path).map_err(io)?.len();
    let done = commit::txn_version(readings, "readings", &id)
        .await?
        .unwrap_or(0);
    let q_done = commit::txn_version(quarantine, "quarantine", &id)
        .await?
        .unwrap_or(0);
    let start = u64::try_from(done).unwrap_or(0);
    if start >= size && size > 0 {
        tracing::info!(file = %shown, "already imported");
        return Ok(());
    }
    let source = format!("file:{shown}");
    let bar = progress_bar(size, &shown);
    bar.set_position(start);
    let reader = match Format::of(path) {
        Format::JsonLines => {
            let mut f = File::open(path).map_err(io)?;
            f.seek(SeekFrom::Start(start)).map_err(io)?;
            Reader::Json(BufReader::with_capacity(1 << 20, f))
        }
        Format::Csv => {
            let bad = |e: csv::Error| Error::Input {
                path: shown.clone(),
                reason: e.to_string(),
            };
            let mut r = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_path(path)
                .map_err(bad)?;
            let header: Vec<String> = r
                .headers()
                .map_err(bad)?
                .iter()
                .map(str::to_owned)
                .collect();
            for needed in ["lot_id", "space_id", "ts", "occupied"] {
                if !header.iter().any(|h| h == needed) {
                    return Err(Error::Input {
                        path: shown,
                        reason: format!(
                            "the CSV header has no {needed:?} column (expected lot_id,space_id,ts,occupied[,battery,…])"
                        ),
                    });
                }
            }
            if start > 0 {
                let mut pos = csv::Position::new();
                pos.set_byte(start);
                r.seek(pos).map_err(bad)?;
            }
            Reader::Csv(r, header)
        }
    };
    // Reading and decoding the next block overlaps with landing the current one.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Decoded>>(1);
    let reader_thread = {
        let (opts, source, shown) = (*opts, source.clone(), shown.clone());
        std::thread::spawn(move || {
            read_and_decode(reader, start, size, max, opts, &source, &shown, &tx)
        })
    };
    let mut pos = start;
    while let Some(block) = rx.recv().await {
        let Decoded {
            lines,
            end,
            rows,
            refused,
        } = block?;
        summary.lines += lines as u64;
        summary.input_bytes += end - pos;
        let txn = || {
            vec![Transaction::new(
                &id,
                i64::try_from(end).unwrap_or(i64::MAX),
            )]
        };
        let refused: Vec<QuarantineRow> = refused
            .into_iter()
            .filter(|q| q.origin.offset.unwrap_or(0) >= q_done)
            .collect();
        if !refused.is_empty() {
            summary.quarantined += refused.len() as u64;
            let a = commit::append(
                quarantine,
                "quarantine",
                vec![quarantine_batch(&refused)],
                txn(),
                "import",
            )
            .await?;
            count(summary, a);
        }
        let (landed, duplicates, a) =
            commit::land_readings(readings, rows, txn(), "import").await?;
        summary.duplicates += duplicates;
        count(summary, a);
        summary.rows += landed;
        pos = end;
        bar.set_position(pos);
        tracing::debug!(file = %shown, rows = summary.rows, offset = pos, "imported a block");
    }
    let _ = reader_thread.join();
    bar.finish_and_clear();
    Ok(())
}

fn count(summary: &mut ImportSummary, a: Appended) {
    if a.version.is_some() {
        summary.commits += 1;
    }
    summary.files += a.files;
    summary.bytes += a.bytes;
}

fn progress_bar(size: u64, name: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(name.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> Line {
        decode_line(
            json.as_bytes(),
            1_795_000_000_000,
            &DecodeOptions::default(),
        )
    }

    #[test]
    fn a_line_carries_its_ids_and_needs_a_ts() {
        match decode(
            r#"{"lot_id":"L1","space_id":"S1","ts":1700000000000,"occupied":true,"note":"x"}"#,
        ) {
            Line::Row(r) => {
                assert_eq!(
                    (r.reading.lot_id.as_str(), r.reading.space_id.as_str()),
                    ("L1", "S1")
                );
                assert_eq!(r.reading.extra.as_deref(), Some(r#"{"note":"x"}"#));
            }
            Line::Refused { error, .. } => panic!("{error}"),
        }
        let Line::Refused { reason, .. } =
            decode(r#"{"lot_id":"L1","space_id":"S1","occupied":true}"#)
        else {
            panic!("accepted a reading without ts");
        };
        assert_eq!(reason, "missing_ts");
        let Line::Refused { reason, .. } = decode(r#"{"space_id":"S1","ts":1,"occupied":true}"#)
        else {
            panic!("accepted a reading without lot_id");
        };
        assert_eq!(reason, "missing_id");
        let Line::Refused { reason, .. } = decode("not json") else {
            panic!("accepted garbage");
        };
        assert_eq!(reason, "not_an_object");
    }

    #[test]
    fn json_blocks_track_byte_offsets() {
        let text = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}";
        let mut r = BufReader::new(&text[..]);
        let mut b = Block::default();
        read_json_block(&mut r, 0, 2, &mut b).unwrap();
        assert_eq!(b.lines.len(), 2);
        assert_eq!(b.lines[1].0, 9);
        assert_eq!(b.line(1), b"{\"b\":2}");
        read_json_block(&mut r, b.end, 2, &mut b).unwrap();
        assert_eq!(b.lines.len(), 1);
        assert_eq!(b.line(0), b"{\"c\":3}");
        assert_eq!(b.end, text.len() as u64);
    }
}
