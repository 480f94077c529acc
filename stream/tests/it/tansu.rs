//! The stream processor against a real Kafka-protocol broker (tansu, at least once): a generated
//! day of readings for several lots gives exactly the windows of the docs/contract.md §4.1 reference.

use std::time::Duration;

use crate::common::{MIN, Running, config, generate, produce, windows};
use fjord_core::occupancy::reference;
use fjord_core::time::now_ms;
use fjord_testkit::{Tansu, kafka};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_readings_gives_exactly_the_reference_windows() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("fjord_stream=info")
        .try_init();
    let tansu = Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    let cfg = config(tansu.kafka_config());
    fjord_stream::runtime::ensure_topics(&cfg).await.unwrap();
    let now = now_ms();
    let from = now - 24 * 60 * MIN;
    let to = now - 3 * MIN;
    let readings = generate(11, 5, 30, from, to, 3_000);
    produce(&cfg.kafka, &readings).await;

    let running = Running::start(&cfg);
    let cutoff = to.div_euclid(10 * MIN) * 10 * MIN;
    let sizes = [MIN, 10 * MIN];
    let expected = reference::windows(&readings, &sizes, cutoff, &|_| None);
    let records = kafka::collect(
        &cfg.kafka,
        &cfg.kafka.topic("occupancy"),
        Duration::from_secs(240),
        |r| {
            // every expected window present (the processor may also have emitted later ones)
            r.len() >= expected.len()
                && windows(r)
                    .values()
                    .filter(|w| w.window_end <= cutoff)
                    .count()
                    >= expected.len()
        },
    )
    .await;
    let summary = running.stop().await.unwrap();
    let got = windows(&records);
    let got_until_cutoff: Vec<_> = got.values().filter(|w| w.window_end <= cutoff).collect();
    assert_eq!(
        got_until_cutoff.len(),
        expected.len(),
        "every window, once (summary {summary:?})"
    );
    for w in &expected {
        let g = &got[&(w.lot_id.clone(), w.window_start, w.window_end)];
        assert_eq!(
            g, w,
            "window {} [{}, {})",
            w.lot_id, w.window_start, w.window_end
        );
    }
    assert_eq!(summary.late, 0, "bounded disorder: nothing late");
    assert!(
        summary.duplicates > 0,
        "the generated duplicates were recognised"
    );
    println!("{} windows compared; {summary:?}", expected.len());
}
