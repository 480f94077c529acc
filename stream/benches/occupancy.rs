//! Readings per second through decode + occupancy on one core, in process (no Kafka): the work the
//! stream processor does per record. Target: ≥ 1,000,000 readings/s.
//! Run with `cargo bench -p fjord-stream --bench occupancy`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fjord_core::config::{Config, MappingRule};
use fjord_core::decode::record::{ReadingsTopics, RecordHeaders};
use fjord_core::time::format_rfc3339_ms;
use fjord_stream::partition::{InRecord, PartitionState};

struct Rec {
    topic: String,
    received: String,
    payload: Vec<u8>,
}

fn records(n: usize) -> Vec<Rec> {
    let t0 = 1_795_255_200_000_i64;
    (0..n)
        .map(|i| {
            let lot = i % 20;
            let space = (i / 20) % 200;
            let ts = t0 + (i as i64) * 10; // 100 readings/s of event time per... a busy city
            Rec {
                topic: format!("parking/L{lot}/S{space}"),
                received: format_rfc3339_ms(ts + 150),
                payload: format!(
                    r#"{{"ts":{ts},"occupied":{},"battery":{}}}"#,
                    (i / 4000) % 2 == 0,
                    50 + i % 50
                )
                .into_bytes(),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut config = Config::default();
    config.mapping = MappingRule::defaults();
    let settings = fjord_stream::runtime::settings(&config).unwrap();
    let _ = ReadingsTopics::new(&config.mapping).unwrap();
    let input = records(200_000);
    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.sample_size(10);
    g.bench_function("decode+occupancy", |b| {
        b.iter(|| {
            let mut state = PartitionState::new(0, &settings);
            let mut out = Vec::new();
            for (i, r) in input.iter().enumerate() {
                let rec = InRecord {
                    offset: i as i64,
                    key: None,
                    payload: &r.payload,
                    headers: RecordHeaders {
                        mqtt_topic: Some(&r.topic),
                        received_at: Some(&r.received),
                        content_type: None,
                    },
                    all_headers: &[],
                };
                state.process(&settings, &rec, 0, &mut out);
                out.clear();
            }
            state
        })
    });
    g.finish();
    // state size per tracked space, after the run
    let mut state = PartitionState::new(0, &settings);
    let mut out = Vec::new();
    for (i, r) in input.iter().enumerate() {
        let rec = InRecord {
            offset: i as i64,
            key: None,
            payload: &r.payload,
            headers: RecordHeaders {
                mqtt_topic: Some(&r.topic),
                received_at: Some(&r.received),
                content_type: None,
            },
            all_headers: &[],
        };
        state.process(&settings, &rec, 0, &mut out);
    }
    let size = state.size();
    let per = |b: usize| b / size.spaces.max(1);
    println!(
        "state after 200k readings of 4000 spaces (one reading per space every 40 s of event time): \
         {} bytes per tracked space resident, plus {} pending and {} dedup-horizon bytes per space at that rate",
        per(size.resident_bytes),
        per(size.pending_bytes),
        per(size.recent_bytes)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
