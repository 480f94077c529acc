//! A Flight SQL prepared statement's handle: self-contained (its SQL and the parameters bound to
//! it, one row as Arrow IPC), so the server keeps nothing per client.

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use base64::Engine;
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};
use tonic::Status;

/// A prepared statement's handle: its SQL and the parameters bound to it (one row, Arrow IPC).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(super) struct Handle {
    pub(super) sql: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) params: String,
}

impl Handle {
    pub(super) fn encode(&self) -> bytes::Bytes {
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, Status> {
        serde_json::from_slice(bytes)
            .map_err(|_| Status::invalid_argument("not a prepared statement handle of this server"))
    }

    /// The bound values, `$1` first.
    pub(super) fn values(&self) -> Result<Vec<ScalarValue>, Status> {
        if self.params.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.params)
            .map_err(|_| Status::invalid_argument("corrupt parameters in the handle"))?;
        let reader = StreamReader::try_new(bytes.as_slice(), None)
            .map_err(|e| Status::invalid_argument(format!("corrupt parameters: {e}")))?;
        let mut values = Vec::new();
        for batch in reader {
            let batch =
                batch.map_err(|e| Status::invalid_argument(format!("corrupt parameters: {e}")))?;
            if batch.num_rows() == 0 {
                continue;
            }
            for column in batch.columns() {
                values.push(
                    ScalarValue::try_from_array(column, 0)
                        .map_err(|e| Status::invalid_argument(e.to_string()))?,
                );
            }
            break;
        }
        Ok(values)
    }
}

/// Serialises one row of parameters as Arrow IPC (base64), or nothing for no rows.
pub(super) fn params_ipc(batches: &[RecordBatch]) -> Result<String, Status> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Ok(String::new());
    }
    if rows > 1 {
        return Err(Status::invalid_argument(format!(
            "{rows} rows of parameters were bound; a query takes one row of parameters at a time"
        )));
    }
    let batch = batches
        .iter()
        .find(|b| b.num_rows() == 1)
        .ok_or_else(|| Status::internal("parameter row vanished"))?;
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, &batch.schema())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        w.write(batch)
            .and_then(|()| w.finish())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn a_handle_carries_its_sql_and_one_row_of_parameters() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![7])),
                Arc::new(StringArray::from(vec!["L1"])),
            ],
        )
        .unwrap();
        let handle = Handle {
            sql: "SELECT $1, $2".into(),
            params: params_ipc(std::slice::from_ref(&batch)).unwrap(),
        };
        let back = Handle::decode(&handle.encode()).unwrap();
        assert_eq!(back, handle);
        assert_eq!(
            back.values().unwrap(),
            vec![
                ScalarValue::Int64(Some(7)),
                ScalarValue::Utf8(Some("L1".into()))
            ]
        );
        let two = arrow::compute::concat_batches(&batch.schema(), [&batch, &batch]).unwrap();
        let e = params_ipc(&[two]).unwrap_err();
        assert!(e.message().contains("one row of parameters"), "{e}");
        assert!(Handle::decode(b"garbage").is_err());
        assert_eq!(params_ipc(&[]).unwrap(), "");
    }
}
