//! Query results as text: an aligned table for people, CSV with a header, or a JSON array of
//! objects (one per row).

use arrow::array::RecordBatch;

use crate::{Error, Result};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
}

impl std::str::FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            other => Err(Error::Format(other.to_owned())),
        }
    }
}

/// Writes `batches` in `format`.
pub fn write(batches: &[RecordBatch], format: Format) -> Result<String> {
    match format {
        Format::Table => Ok(arrow::util::pretty::pretty_format_batches(batches)?.to_string()),
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for b in batches {
                    w.write(b)?;
                }
            }
            String::from_utf8(out).map_err(|e| Error::Query(e.to_string()))
        }
        Format::Json => {
            let mut out = Vec::new();
            {
                let mut w = arrow::json::ArrayWriter::new(&mut out);
                let refs: Vec<&RecordBatch> = batches.iter().collect();
                w.write_batches(&refs)?;
                w.finish()?;
            }
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
            String::from_utf8(out).map_err(|e| Error::Query(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn the_three_formats() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("lot_id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        assert_eq!(
            write(std::slice::from_ref(&b), Format::Csv).unwrap(),
            "lot_id,n\na,1\nb,2\n"
        );
        assert_eq!(
            write(std::slice::from_ref(&b), Format::Json).unwrap(),
            r#"[{"lot_id":"a","n":1},{"lot_id":"b","n":2}]"#
        );
        let table = write(&[b], Format::Table).unwrap();
        assert!(
            table.contains("| lot_id | n |") && table.contains("| b      | 2 |"),
            "{table}"
        );
        assert_eq!(write(&[], Format::Json).unwrap(), "[]");
        assert!("xml".parse::<Format>().is_err());
    }
}
