//! Throughput of payload decoding (docs/contract.md §3.1) on one core: JSON and CBOR readings per second.
//! Run with `cargo bench -p fjord-core --bench decode`; the target is ≥ 1,000,000 JSON readings/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fjord_core::decode::{DecodeOptions, RawMessage, decode_reading};
use std::hint::black_box;

fn payloads() -> Vec<(String, Vec<u8>)> {
    (0..1024)
        .map(|i| {
            let ts = 1_795_255_200_000_i64 + i * 1000;
            let json = if i % 2 == 0 {
                format!(
                    r#"{{"ts":"2026-11-21T10:{:02}:{:02}.{:03}Z","occupied":{},"battery":{}}}"#,
                    (i / 60) % 60,
                    i % 60,
                    i % 1000,
                    i % 3 == 0,
                    50 + i % 50
                )
            } else {
                format!(
                    r#"{{"ts":{ts},"occupied":{},"battery":{}}}"#,
                    i % 3 == 0,
                    50 + i % 50
                )
            };
            (format!("S{i}"), json.into_bytes())
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let opts = DecodeOptions::default();
    let received_at = 1_795_258_800_000;
    let inputs = payloads();
    let cbor_inputs: Vec<(String, Vec<u8>)> = inputs
        .iter()
        .map(|(s, p)| {
            let v: serde_json::Value = serde_json::from_slice(p).unwrap();
            let mut out = Vec::new();
            ciborium::into_writer(&v, &mut out).unwrap();
            (s.clone(), out)
        })
        .collect();
    let mut g = c.benchmark_group("decode");
    for (name, set) in [("json", &inputs), ("cbor", &cbor_inputs)] {
        g.throughput(Throughput::Elements(set.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                for (space, payload) in set.iter() {
                    let msg = RawMessage {
                        lot_id: "L1",
                        space_id: space,
                        payload,
                        content_type: None,
                        received_at,
                    };
                    black_box(decode_reading(black_box(&msg), &opts).unwrap());
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
