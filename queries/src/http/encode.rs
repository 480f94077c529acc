//! Query results as HTTP bodies, one batch at a time: a JSON array of objects (default), CSV with a
//! header line, NDJSON (one object per line) or an Arrow IPC stream, chosen by `Accept`.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::StreamWriter;
use arrow::json::writer::LineDelimited;

use crate::Result;

/// A result format of `POST /api/sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `application/json`: `[{"col": value, …}, …]`.
    Json,
    /// `text/csv`, with a header line.
    Csv,
    /// `application/x-ndjson`: one JSON object per line.
    Ndjson,
    /// `application/vnd.apache.arrow.stream`.
    Arrow,
}

impl Wire {
    /// The format an `Accept` header asks for: the first media range of the list that names a
    /// format (`*/*` and `application/*` mean JSON, `text/*` CSV); JSON when there is no header.
    /// `None` when the header names only types fjord cannot produce, or none at all (an empty
    /// `Accept` accepts nothing): answered 406, as the OpenAPI description says.
    pub fn from_accept(accept: Option<&str>) -> Option<Self> {
        let Some(a) = accept else {
            return Some(Wire::Json);
        };
        for part in a.split(',') {
            let media = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match media.as_str() {
                "application/json" | "*/*" | "application/*" => return Some(Wire::Json),
                "text/csv" | "text/*" => return Some(Wire::Csv),
                "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                    return Some(Wire::Ndjson);
                }
                "application/vnd.apache.arrow.stream" | "application/vnd.apache.arrow" => {
                    return Some(Wire::Arrow);
                }
                _ => {}
            }
        }
        None
    }

    /// The `Content-Type` of the body.
    pub fn content_type(self) -> &'static str {
        match self {
            Wire::Json => "application/json",
            Wire::Csv => "text/csv; charset=utf-8",
            Wire::Ndjson => "application/x-ndjson",
            Wire::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// Turns batches into body bytes.
pub struct Encoder {
    wire: Wire,
    rows: u64,
    arrow: Option<StreamWriter<Vec<u8>>>,
}

impl Encoder {
    /// An encoder for results of `schema`; returns it with the opening bytes.
    pub fn begin(wire: Wire, schema: &SchemaRef) -> Result<(Self, Vec<u8>)> {
        let mut out = Vec::new();
        let mut arrow = None;
        match wire {
            Wire::Json => out.push(b'['),
            Wire::Csv => {
                let names: Vec<String> = schema
                    .fields()
                    .iter()
                    .map(|f| csv_field(f.name()))
                    .collect();
                out.extend_from_slice(names.join(",").as_bytes());
                out.push(b'\n');
            }
            Wire::Ndjson => {}
            Wire::Arrow => {
                let mut w = StreamWriter::try_new(Vec::new(), schema)?;
                out.append(w.get_mut());
                arrow = Some(w);
            }
        }
        Ok((
            Self {
                wire,
                rows: 0,
                arrow,
            },
            out,
        ))
    }

    /// Appends the encoding of `batch` to `out`.
    pub fn batch(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
        match self.wire {
            Wire::Json | Wire::Ndjson => {
                let mut lines = Vec::new();
                {
                    let mut w = arrow::json::WriterBuilder::new()
                        .with_explicit_nulls(true)
                        .build::<_, LineDelimited>(&mut lines);
                    w.write(batch)?;
                    w.finish()?;
                }
                if self.wire == Wire::Ndjson {
                    out.extend_from_slice(&lines);
                } else {
                    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        if self.rows > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(line);
                        self.rows += 1;
                    }
                    return Ok(());
                }
            }
            Wire::Csv => {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(false)
                    .build(&mut *out);
                w.write(batch)?;
            }
            Wire::Arrow => {
                if let Some(w) = self.arrow.as_mut() {
                    w.write(batch)?;
                    out.append(w.get_mut());
                }
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// The closing bytes.
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(match self.wire {
            Wire::Json => b"]".to_vec(),
            Wire::Csv | Wire::Ndjson => Vec::new(),
            Wire::Arrow => match self.arrow.as_mut() {
                Some(w) => {
                    w.finish()?;
                    std::mem::take(w.get_mut())
                }
                None => Vec::new(),
            },
        })
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a,b"), None])),
            ],
        )
        .unwrap()
    }

    fn encode(wire: Wire, batches: usize) -> Vec<u8> {
        let b = batch();
        let (mut e, mut out) = Encoder::begin(wire, &b.schema()).unwrap();
        for _ in 0..batches {
            e.batch(&b, &mut out).unwrap();
        }
        out.extend(e.finish().unwrap());
        out
    }

    #[test]
    fn json_is_one_array_of_objects_over_batches() {
        let v: serde_json::Value = serde_json::from_slice(&encode(Wire::Json, 2)).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 4);
        assert_eq!(v[1], serde_json::json!({"n": 2, "s": null}));
        let empty: serde_json::Value = serde_json::from_slice(&encode(Wire::Json, 0)).unwrap();
        assert_eq!(empty, serde_json::json!([]));
    }

    #[test]
    fn csv_has_one_header_and_quotes() {
        let text = String::from_utf8(encode(Wire::Csv, 2)).unwrap();
        assert_eq!(text, "n,s\n1,\"a,b\"\n2,\n1,\"a,b\"\n2,\n");
    }

    #[test]
    fn ndjson_is_a_line_per_row_and_arrow_reads_back() {
        let text = String::from_utf8(encode(Wire::Ndjson, 1)).unwrap();
        assert_eq!(text.lines().count(), 2);
        let bytes = encode(Wire::Arrow, 3);
        let r =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let rows: usize = r.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 6);
    }

    #[test]
    fn accept_picks_the_format() {
        let pick = |a| Wire::from_accept(Some(a));
        assert_eq!(Wire::from_accept(None), Some(Wire::Json));
        assert_eq!(pick("text/csv"), Some(Wire::Csv));
        assert_eq!(pick("application/x-ndjson"), Some(Wire::Ndjson));
        assert_eq!(
            pick("application/vnd.apache.arrow.stream"),
            Some(Wire::Arrow)
        );
        assert_eq!(pick("text/html, */*;q=0.8"), Some(Wire::Json));
        assert_eq!(pick("text/html, text/*"), Some(Wire::Csv));
    }

    #[test]
    fn an_accept_naming_no_format_fjord_has_is_refused() {
        assert_eq!(Wire::from_accept(Some("AAA")), None);
        assert_eq!(Wire::from_accept(Some("")), None);
        assert_eq!(Wire::from_accept(Some("image/png, text/html")), None);
    }
}
