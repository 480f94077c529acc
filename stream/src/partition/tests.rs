//! One partition's processing on hand-made records: windows, lateness, duplicates, dead letters,
//! idle advance, and replay after a restore repeating exactly the original outputs.

use fjord_core::config::MappingRule;
use fjord_core::time::format_rfc3339_ms;

use super::*;

const T0: i64 = 1_795_255_200_000; // 2026-11-21T10:00:00Z
const S: i64 = 1000;
const MIN: i64 = 60 * S;

fn settings() -> Settings {
    Settings {
        windows_ms: vec![MIN],
        out_of_orderness_ms: 5 * S,
        idle_after_ms: 10 * S,
        allowed_lateness_ms: 60 * S,
        dedup_horizon_ms: 2 * MIN,
        decode: DecodeOptions::default(),
        topics: ReadingsTopics::new(&MappingRule::defaults()).unwrap(),
        lots: LotsRegistry::default(),
        rules: Arc::new(Rules::none()),
    }
}

struct Rec {
    offset: i64,
    topic: String,
    received: String,
    payload: Vec<u8>,
    headers: Vec<(&'static str, &'static [u8])>,
}

fn rec(offset: i64, lot: &str, space: &str, ts: i64, occupied: bool) -> Rec {
    let topic = format!("parking/{lot}/{space}");
    let received = format_rfc3339_ms(ts + 200);
    Rec {
        offset,
        headers: vec![("fjord-source", b"mqtt")],
        topic,
        received,
        payload: format!(r#"{{"ts":{ts},"occupied":{occupied}}}"#).into_bytes(),
    }
}

/// What a compacted changelog holds after `records`: the latest value per key, deletions applied.
fn compacted(records: Vec<parts::Record>) -> Vec<(String, Vec<u8>)> {
    let mut latest = std::collections::BTreeMap::new();
    for (k, v) in records {
        match v {
            Some(v) => latest.insert(k, v),
            None => latest.remove(&k),
        };
    }
    latest.into_iter().collect()
}

fn feed(p: &mut PartitionState, s: &Settings, r: &Rec, out: &mut Vec<Output>) -> Fate {
    let input = InRecord {
        offset: r.offset,
        key: None,
        payload: &r.payload,
        headers: RecordHeaders {
            mqtt_topic: Some(&r.topic),
            received_at: Some(&r.received),
            content_type: None,
        },
        all_headers: &r.headers,
    };
    p.process(s, &input, T0, out)
}

fn windows(out: &[Output]) -> Vec<&OccupancyWindow> {
    out.iter()
        .filter_map(|o| match o {
            Output::Window(w) => Some(w),
            _ => None,
        })
        .collect()
}

#[test]
fn windows_close_once_every_reading_for_them_would_be_late() {
    let s = settings();
    let mut p = PartitionState::new(0, &s);
    let mut out = Vec::new();
    feed(&mut p, &s, &rec(0, "L1", "S1", T0 + 10 * S, true), &mut out);
    // watermark = max ts − 5 s; a 1-minute window closes when watermark − 60 s reaches its end
    feed(
        &mut p,
        &s,
        &rec(1, "L1", "S2", T0 + 2 * MIN + 4 * S, true),
        &mut out,
    );
    assert!(
        windows(&out).is_empty(),
        "window [10:00,10:01) needs the watermark at 10:02:00"
    );
    feed(
        &mut p,
        &s,
        &rec(2, "L1", "S2", T0 + 2 * MIN + 5 * S, true),
        &mut out,
    );
    let w = windows(&out);
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].window_start, w[0].occupied_avg, w[0].arrivals),
        (T0, 50.0 / 60.0, 1)
    );
}

#[test]
fn late_duplicate_and_undecodable_records() {
    let s = settings();
    let mut p = PartitionState::new(0, &s);
    let mut out = Vec::new();
    assert_eq!(
        feed(
            &mut p,
            &s,
            &rec(0, "L1", "S1", T0 + 10 * MIN, true),
            &mut out
        ),
        Fate::Accepted
    );
    assert_eq!(
        feed(
            &mut p,
            &s,
            &rec(1, "L1", "S1", T0 + 10 * MIN, true),
            &mut out
        ),
        Fate::Duplicate
    );
    // watermark is 10:09:55: anything before 10:08:55 is late
    assert_eq!(
        feed(
            &mut p,
            &s,
            &rec(2, "L1", "S2", T0 + 8 * MIN + 50 * S, true),
            &mut out
        ),
        Fate::Late
    );
    assert_eq!(
        feed(
            &mut p,
            &s,
            &rec(3, "L1", "S3", T0 + 9 * MIN, true),
            &mut out
        ),
        Fate::Accepted
    );
    let mut bad = rec(4, "L1", "S4", T0, true);
    bad.payload = br#"{"occupied":"yes"}"#.to_vec();
    assert_eq!(feed(&mut p, &s, &bad, &mut out), Fate::Dead);
    assert!(
        matches!(&out[0], Output::Late { lot_id, watermark, .. } if lot_id == "L1" && *watermark == T0 + 9 * MIN + 55 * S)
    );
    assert!(matches!(
        &out[1],
        Output::DeadLetter {
            reason: "invalid_field",
            ..
        }
    ));
    assert_eq!(p.next_offset(), 5);
}

#[test]
fn idle_advance_closes_windows_without_new_records() {
    let s = settings();
    let mut p = PartitionState::new(0, &s);
    let mut out = Vec::new();
    let first = rec(0, "L1", "S1", T0, true);
    let input = InRecord {
        offset: 0,
        key: None,
        payload: &first.payload,
        headers: RecordHeaders {
            mqtt_topic: Some(&first.topic),
            received_at: Some(&first.received),
            content_type: None,
        },
        all_headers: &first.headers,
    };
    p.process(&s, &input, T0, &mut out);
    p.tick(&s, T0 + 5 * S, &mut out);
    assert!(windows(&out).is_empty());
    // ten idle seconds later the watermark follows the clock (minus 5 s): at 10:03 wall-clock,
    // windows up to 10:01:55 − 60 s... and so on
    p.tick(&s, T0 + 3 * MIN, &mut out);
    let w = windows(&out);
    assert_eq!(w.len(), 1, "[10:00,10:01) closed by the wall clock");
    assert_eq!(w[0].occupied_avg, 1.0);
}

#[test]
fn a_restored_partition_replays_exactly_the_original_outputs() {
    let s = settings();
    let records: Vec<Rec> = (0..400)
        .map(|i| {
            let lot = ["L1", "L2", "L3"][i as usize % 3];
            // bounded disorder: pairs swapped
            let t = T0 + (i ^ 1) * 2 * S;
            rec(i, lot, &format!("S{}", i % 7), t, (i / 3) % 2 == 0)
        })
        .collect();
    // uninterrupted run, checkpoints after records 150 and 260
    let mut p = PartitionState::new(0, &s);
    let mut all: Vec<(i64, Output)> = Vec::new();
    let mut checkpoints: Vec<Vec<parts::Record>> = Vec::new();
    for r in &records {
        let mut out = Vec::new();
        feed(&mut p, &s, r, &mut out);
        all.extend(out.into_iter().map(|o| (r.offset, o)));
        if r.offset == 150 || r.offset == 260 {
            checkpoints.push(p.take_checkpoint());
        }
    }
    // the latest value per key, as a compacted changelog gives it
    let mut latest: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for cp in &checkpoints {
        for (k, v) in cp {
            match v {
                Some(v) => latest.insert(k.clone(), v.clone()),
                None => latest.remove(k),
            };
        }
    }
    // a crash after 260: restore, then replay from an older committed offset (120)
    let mut restored = PartitionState::restore(0, &s, latest.clone()).unwrap();
    assert_eq!(restored.next_offset(), 261);
    let mut replay = Vec::new();
    for r in &records[120..] {
        let mut out = Vec::new();
        feed(&mut restored, &s, r, &mut out);
        replay.extend(out.into_iter().map(|o| (r.offset, o)));
    }
    let original_tail: Vec<&(i64, Output)> = all.iter().filter(|(o, _)| *o > 260).collect();
    let replay_tail: Vec<&(i64, Output)> = replay.iter().collect();
    assert_eq!(
        replay_tail, original_tail,
        "the replay repeats the outputs after the checkpoint, nothing else"
    );
    assert!(!original_tail.is_empty());

    // a checkpoint cut short: lots of the second checkpoint written, its meta not
    let mut torn = latest.clone();
    let first_meta = checkpoints[0]
        .iter()
        .find(|(k, _)| k == "meta")
        .unwrap()
        .1
        .clone();
    torn.insert("meta".into(), first_meta.unwrap());
    let mut restored = PartitionState::restore(0, &s, torn).unwrap();
    assert_eq!(restored.next_offset(), 151);
    let mut replay = Vec::new();
    for r in &records[151..] {
        let mut out = Vec::new();
        feed(&mut restored, &s, r, &mut out);
        replay.extend(out.into_iter().map(|o| (r.offset, o)));
    }
    // what records 151..=260 produced was out before their lots were checkpointed
    let tail: Vec<&(i64, Output)> = all.iter().filter(|(o, _)| *o > 260).collect();
    assert_eq!(
        replay.iter().collect::<Vec<_>>(),
        tail,
        "lots ahead of the meta skip what they already applied"
    );
}

#[test]
fn sensor_silent_fires_from_idle_ticks_alone_and_a_restored_partition_does_not_fire_it_again() {
    let mut s = settings();
    let mut cfg = fjord_core::config::AlertsConfig::default();
    cfg.sensor_silent.after = fjord_core::duration::Duration::from_mins(2);
    cfg.lot_full.enabled = false;
    s.rules = Arc::new(Rules::from_config(&cfg, &s.windows_ms).unwrap());
    let mut p = PartitionState::new(0, &s);
    let mut out = Vec::new();
    feed(&mut p, &s, &rec(0, "L1", "S1", T0, true), &mut out);
    assert!(!out.iter().any(|o| matches!(o, Output::Alert(_))));
    // no traffic at all: only the wall clock moves the watermark (idle advance)
    p.tick(&s, T0 + 3 * MIN, &mut out);
    let alerts: Vec<&Alert> = out
        .iter()
        .filter_map(|o| match o {
            Output::Alert(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(alerts.len(), 1, "{out:?}");
    assert_eq!(alerts[0].key, "sensor_silent/L1/S1");
    assert_eq!(alerts[0].event_time, T0 + 2 * MIN);
    // the alert state is part of the checkpoint
    let restored = PartitionState::restore(0, &s, compacted(p.take_checkpoint())).unwrap();
    let mut p = restored;
    let mut again = Vec::new();
    p.tick(&s, T0 + 4 * MIN, &mut again);
    assert!(
        !again.iter().any(|o| matches!(o, Output::Alert(_))),
        "{again:?}"
    );
}

#[test]
fn twins_follow_the_newest_reading_late_ones_too_and_survive_a_restore() {
    let s = settings();
    let mut p = PartitionState::new(0, &s);
    let mut out = Vec::new();
    feed(&mut p, &s, &rec(0, "L1", "S1", T0 + 10 * S, true), &mut out);
    feed(
        &mut p,
        &s,
        &rec(1, "L1", "S2", T0 + 11 * S, false),
        &mut out,
    );
    feed(&mut p, &s, &rec(2, "L1", "S1", T0 + 10 * S, true), &mut out); // duplicate
    let rows = p.take_spaces();
    let ids: Vec<_> = rows
        .iter()
        .map(|r| (r.space_id.as_str(), r.occupied))
        .collect();
    assert_eq!(ids, [("S1", true), ("S2", false)]);
    assert!(p.take_spaces().is_empty(), "published once per change");
    // far ahead, then S3's first reading arrives too late for the windows: its twin still shows it
    feed(
        &mut p,
        &s,
        &rec(3, "L1", "S2", T0 + 10 * MIN, true),
        &mut out,
    );
    let fate = feed(&mut p, &s, &rec(4, "L1", "S3", T0 + 20 * S, true), &mut out);
    assert_eq!(fate, Fate::Late);
    let rows = p.take_spaces();
    let ids: Vec<_> = rows.iter().map(|r| r.space_id.as_str()).collect();
    assert_eq!(ids, ["S2", "S3"]);
    // a restore continues the twins from the checkpoint
    let checkpoint = compacted(p.take_checkpoint());
    let mut back = PartitionState::restore(0, &s, checkpoint).unwrap();
    assert!(back.take_spaces().is_empty(), "nothing new to publish");
    feed(
        &mut back,
        &s,
        &rec(5, "L1", "S2", T0 + 11 * MIN, true),
        &mut out,
    );
    let row = back.take_spaces().pop().unwrap();
    assert_eq!(
        (row.occupied, row.since, row.last_seen),
        (true, T0 + 10 * MIN, T0 + 11 * MIN),
        "same state: since stays"
    );
}

#[test]
fn a_checkpoint_written_before_twins_restores_and_republishes_them() {
    let s = settings();
    let mut p = PartitionState::new(0, &s);
    let mut out = Vec::new();
    feed(&mut p, &s, &rec(0, "L1", "S1", T0 + 10 * S, true), &mut out);
    feed(
        &mut p,
        &s,
        &rec(1, "L1", "S2", T0 + 20 * S, false),
        &mut out,
    );
    // the lot's checkpoint as the previous format wrote it: (engine, applied_offset, alerts)
    let old: Vec<(String, Vec<u8>)> = compacted(p.take_checkpoint())
        .into_iter()
        .map(|(key, value)| {
            if key.starts_with("lot/") {
                let (lot, _) = decode_lot(&value).unwrap();
                let v1 =
                    postcard::to_allocvec(&(&lot.engine, lot.applied_offset, &lot.alerts)).unwrap();
                (key, v1)
            } else {
                (key, value)
            }
        })
        .collect();
    let mut back = PartitionState::restore(0, &s, old.clone()).unwrap();
    let rows = back.take_spaces();
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.space_id.as_str(), r.occupied, r.last_seen, r.battery))
        .collect();
    assert_eq!(
        got,
        [
            ("S1", true, T0 + 10 * S, None),
            ("S2", false, T0 + 20 * S, None)
        ]
    );
    // an old checkpoint with a byte missing is refused, not misread
    let cut: Vec<_> = old
        .into_iter()
        .map(|(k, mut v)| {
            if k.starts_with("lot/") {
                v.pop();
            }
            (k, v)
        })
        .collect();
    assert!(PartitionState::restore(0, &s, cut).is_err());
}

#[test]
fn a_lot_larger_than_a_record_is_checkpointed_in_parts_and_restored() {
    let s = settings();
    let mut p = PartitionState::new(0, &s);
    let mut out = Vec::new();
    // 3,000 spaces with 100-byte ids: a state of several parts
    let id = |i: usize| format!("{i:0>100}");
    for i in 0..3000 {
        let r = rec(i as i64, "L1", &id(i), T0 + i as i64, i % 2 == 0);
        assert_eq!(feed(&mut p, &s, &r, &mut out), Fate::Accepted);
    }
    let mut topic = std::collections::BTreeMap::new();
    let write = |records: Vec<parts::Record>,
                 topic: &mut std::collections::BTreeMap<String, Vec<u8>>| {
        for (k, v) in records {
            match v {
                Some(v) => {
                    assert!(v.len() <= parts::PART_BYTES + 64, "{k}: {} bytes", v.len());
                    topic.insert(k, v);
                }
                None => {
                    topic.remove(&k);
                }
            }
        }
    };
    write(p.take_checkpoint(), &mut topic);
    let parts_now = topic
        .keys()
        .filter(|k| k.starts_with(parts::PART_PREFIX))
        .count();
    assert!(parts_now >= 2, "{parts_now} parts");
    let back = PartitionState::restore(0, &s, topic.clone()).unwrap();
    assert_eq!(back.lots["L1"], p.lots["L1"]);
    // the next state replaces the parts; a crash that left old parts behind is cleaned up at restore
    let stale = topic.clone();
    let r = rec(3000, "L1", &id(3000), T0 + 3000, true);
    feed(&mut p, &s, &r, &mut out);
    write(p.take_checkpoint(), &mut topic);
    assert_eq!(
        topic
            .keys()
            .filter(|k| k.starts_with(parts::PART_PREFIX))
            .count(),
        parts_now,
        "the old parts were deleted"
    );
    let mut crashed = topic.clone();
    crashed.extend(
        stale
            .into_iter()
            .filter(|(k, _)| k.starts_with(parts::PART_PREFIX)),
    );
    let mut back = PartitionState::restore(0, &s, crashed.clone()).unwrap();
    assert_eq!(back.lots["L1"], p.lots["L1"]);
    write(back.take_checkpoint(), &mut crashed);
    assert_eq!(
        crashed, topic,
        "orphaned parts deleted with the next checkpoint"
    );
}

#[test]
fn a_replay_after_a_crash_between_parts_and_header_keeps_the_parts_it_rewrites() {
    let s = settings();
    let id = |i: usize| format!("{i:0>100}");
    let records: Vec<Rec> = (0..3001)
        .map(|i| rec(i as i64, "L1", &id(i), T0 + i as i64, true))
        .collect();
    let mut out = Vec::new();
    let mut p = PartitionState::new(0, &s);
    for r in &records[..3000] {
        feed(&mut p, &s, r, &mut out);
    }
    let mut topic = std::collections::BTreeMap::new();
    for (k, v) in p.take_checkpoint() {
        if let Some(v) = v {
            topic.insert(k, v);
        }
    }
    // the next checkpoint is cut short: its new parts are written, its header is not
    feed(&mut p, &s, &records[3000], &mut out);
    let next = p.take_checkpoint();
    let header = next
        .iter()
        .position(|(k, _)| k == "lot/L1")
        .expect("the lot's header");
    for (k, v) in next[..header].iter().cloned() {
        topic.insert(k, v.unwrap());
    }
    // restart: the new parts are orphans; the replay writes them again, with their header
    let mut back = PartitionState::restore(0, &s, topic.clone()).unwrap();
    feed(&mut back, &s, &records[3000], &mut out);
    for (k, v) in back.take_checkpoint() {
        match v {
            Some(v) => topic.insert(k, v),
            None => topic.remove(&k),
        };
    }
    let again = PartitionState::restore(0, &s, topic).expect("a restore after the replay");
    assert_eq!(again.lots["L1"], p.lots["L1"]);
}

/// The compacted topic after `records`, in place.
fn write_to(topic: &mut std::collections::BTreeMap<String, Vec<u8>>, records: Vec<parts::Record>) {
    for (k, v) in records {
        match v {
            Some(v) => topic.insert(k, v),
            None => topic.remove(&k),
        };
    }
}

/// Readings of one lot every 10 ms of event time from `from` (offsets alike), 50 spaces.
fn stream_of(from: i64, n: i64) -> Vec<Rec> {
    (from..from + n)
        .map(|i| {
            rec(
                i,
                "L1",
                &format!("S{}", i % 50),
                T0 + i * 10,
                (i / 50) % 2 == 0,
            )
        })
        .collect()
}

#[test]
fn held_readings_are_written_by_bucket_and_a_commit_writes_only_the_buckets_it_changed() {
    let s = settings();
    let mut p = PartitionState::new(0, &s);
    let mut out = Vec::new();
    // 30 s of readings, all still held (pending: the frontier is a minute behind)
    for r in stream_of(0, 3000) {
        assert_eq!(feed(&mut p, &s, &r, &mut out), Fate::Accepted);
    }
    let bytes = |records: &[parts::Record]| -> usize {
        records
            .iter()
            .map(|(_, v)| v.as_ref().map_or(0, Vec::len))
            .sum()
    };
    let first = p.take_checkpoint();
    let count = |records: &[parts::Record]| {
        records
            .iter()
            .filter(|(k, v)| k.starts_with(buckets::BUCKET_PREFIX) && v.is_some())
            .count()
    };
    assert_eq!(count(&first), 30, "one bucket per second of event time");
    let mut topic = std::collections::BTreeMap::new();
    write_to(&mut topic, first.clone());
    // the next 100 ms of input: one bucket and the lot's record, not the whole state again
    for r in stream_of(3000, 10) {
        feed(&mut p, &s, &r, &mut out);
    }
    let second = p.take_checkpoint();
    assert_eq!(count(&second), 1);
    let lot_record = |records: &[parts::Record]| {
        bytes(
            &records
                .iter()
                .filter(|(k, _)| k == "lot/L1")
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let held_bytes = |records: &[parts::Record]| bytes(records) - lot_record(records);
    assert!(
        held_bytes(&second) * 20 < held_bytes(&first),
        "held readings: {} bytes after {} bytes",
        held_bytes(&second),
        held_bytes(&first)
    );
    assert!(
        lot_record(&second) <= lot_record(&first) + 64,
        "the lot's record does not grow with its held readings"
    );
    write_to(&mut topic, second);
    let back = PartitionState::restore(0, &s, topic).unwrap();
    assert_eq!(back.lots["L1"], p.lots["L1"]);
}

#[test]
fn every_prefix_of_a_checkpoint_restores_the_state_before_it_or_after_it() {
    let s = settings();
    let mut p = PartitionState::new(0, &s);
    let mut out = Vec::new();
    let mut topic = std::collections::BTreeMap::new();
    // 400 s of input, checkpointed every 2 s: the frontier moves, applied readings pass the
    // dedup horizon and their buckets are deleted
    let records = stream_of(0, 40_000);
    for chunk in records[..39_800].chunks(200) {
        for r in chunk {
            feed(&mut p, &s, r, &mut out);
        }
        write_to(&mut topic, p.take_checkpoint());
    }
    let held = p.lots["L1"].held.buckets.len();
    assert!(
        (180..=190).contains(&held),
        "{held} buckets: 65 s pending + 2 min recent"
    );
    assert!(
        topic.len() < held + 5,
        "deleted buckets are gone: {} keys",
        topic.len()
    );
    let before = p.lots.clone();
    for r in &records[39_800..] {
        feed(&mut p, &s, r, &mut out);
    }
    let last = p.take_checkpoint();
    assert!(
        last.iter()
            .any(|(k, v)| k.starts_with(buckets::BUCKET_PREFIX) && v.is_none())
    );
    for cut in 0..=last.len() {
        let mut t = topic.clone();
        write_to(&mut t, last[..cut].to_vec());
        let back = PartitionState::restore(0, &s, t).unwrap();
        assert!(
            back.lots == before || back.lots == p.lots,
            "cut after {cut} of {} records",
            last.len()
        );
    }
    // a crash that left buckets behind: they are deleted with the next checkpoint
    let mut t = topic.clone();
    write_to(&mut t, last[..1].to_vec());
    let mut back = PartitionState::restore(0, &s, t.clone()).unwrap();
    assert_eq!(back.lots, before);
    for r in &records[39_800..] {
        feed(&mut back, &s, r, &mut out);
    }
    write_to(&mut t, back.take_checkpoint());
    write_to(&mut topic, last);
    // (the lot's record is not compared byte for byte: its maps encode in hash order)
    let buckets_of = |t: &std::collections::BTreeMap<String, Vec<u8>>| {
        t.iter()
            .filter(|(k, _)| k.starts_with(buckets::BUCKET_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        t.keys().collect::<Vec<_>>(),
        topic.keys().collect::<Vec<_>>(),
        "the orphan was deleted"
    );
    assert!(buckets_of(&t) == buckets_of(&topic), "the same buckets");
    let again = PartitionState::restore(0, &s, t).unwrap();
    assert_eq!(again.lots, p.lots);
}

#[test]
fn a_checkpoint_with_held_readings_inside_the_lot_restores_and_writes_them_as_buckets() {
    let s = settings();
    let mut p = PartitionState::new(0, &s);
    let mut out = Vec::new();
    for r in stream_of(0, 20_000) {
        feed(&mut p, &s, &r, &mut out);
    }
    let lot = &p.lots["L1"];
    assert!(lot.engine.recent_len() > 0 && lot.engine.pending_len() > 0);
    // the previous format: (engine with its held readings, applied_offset, alerts, twins)
    let v2 =
        postcard::to_allocvec(&(&lot.engine, lot.applied_offset, &lot.alerts, &lot.twins)).unwrap();
    let meta = compacted(p.take_checkpoint())
        .into_iter()
        .filter(|(k, _)| k == "meta");
    let old: Vec<_> = meta.chain([("lot/L1".to_owned(), v2)]).collect();
    let mut back = PartitionState::restore(0, &s, old).unwrap();
    assert_eq!(back.lots["L1"].engine, p.lots["L1"].engine);
    let mut topic = std::collections::BTreeMap::new();
    write_to(&mut topic, back.take_checkpoint());
    assert_eq!(back.lots["L1"], p.lots["L1"], "the same buckets");
    let again = PartitionState::restore(0, &s, topic).unwrap();
    assert_eq!(again.lots["L1"], p.lots["L1"]);
}
