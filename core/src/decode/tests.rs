//! Every rule of docs/contract.md §3.1, in JSON and in CBOR.

use proptest::prelude::*;
use serde_json::json;

use super::*;

const RECEIVED: TimestampMs = 1_795_255_260_000; // 2026-11-21T10:01:00Z

fn msg<'a>(payload: &'a [u8], content_type: Option<&'a str>) -> RawMessage<'a> {
    RawMessage {
        lot_id: "L1",
        space_id: "S7",
        payload,
        content_type,
        received_at: RECEIVED,
    }
}

fn cbor(v: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn decode_json(v: serde_json::Value) -> Result<Reading, DecodeError> {
    let bytes = serde_json::to_vec(&v).unwrap();
    decode_reading(&msg(&bytes, None), &DecodeOptions::default())
}

/// Decodes `v` as JSON and as CBOR, sniffed and declared, and checks all four agree.
fn decode_both(v: serde_json::Value) -> Result<Reading, DecodeError> {
    let json = serde_json::to_vec(&v).unwrap();
    let cbor = cbor(&v);
    let opts = DecodeOptions::default();
    let a = decode_reading(&msg(&json, None), &opts);
    let b = decode_reading(&msg(&json, Some("application/json; charset=utf-8")), &opts);
    let c = decode_reading(&msg(&cbor, None), &opts);
    let d = decode_reading(&msg(&cbor, Some("application/cbor")), &opts);
    assert_eq!(a, b, "declared JSON differs from sniffed");
    assert_eq!(a, c, "CBOR differs from JSON for {v}");
    assert_eq!(c, d, "declared CBOR differs from sniffed");
    a
}

fn err_text(v: serde_json::Value) -> String {
    decode_both(v).unwrap_err().to_string()
}

#[test]
fn rfc3339_and_epoch_ms_give_the_same_reading() {
    let a = decode_both(json!({"ts": "2026-11-21T10:00:00.250Z", "occupied": true, "battery": 87}))
        .unwrap();
    let b =
        decode_both(json!({"ts": 1_795_255_200_250_i64, "occupied": true, "battery": 87})).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a,
        Reading {
            lot_id: "L1".into(),
            space_id: "S7".into(),
            ts: 1_795_255_200_250,
            occupied: true,
            battery: Some(87),
            extra: None,
            ts_source: TsSource::Device,
        }
    );
    let offset = decode_both(
        json!({"ts": "2026-11-21T11:00:00.250+01:00", "occupied": true, "battery": 87}),
    );
    assert_eq!(offset.unwrap(), a);
}

#[test]
fn missing_or_null_ts_uses_receive_time() {
    for v in [
        json!({"occupied": false}),
        json!({"occupied": false, "ts": null}),
    ] {
        let r = decode_both(v).unwrap();
        assert_eq!(r.ts, RECEIVED);
        assert_eq!(r.ts_source, TsSource::Received);
        assert!(!r.occupied);
        assert_eq!(r.battery, None);
    }
}

#[test]
fn other_fields_are_kept_as_sorted_json() {
    let r = decode_both(json!({
        "occupied": true, "zeta": [1, 2], "fw": "1.2.3", "temp": {"c": 4.5}, "ts": 1_795_255_200_000_i64
    }))
    .unwrap();
    assert_eq!(
        r.extra.as_deref(),
        Some(r#"{"fw":"1.2.3","temp":{"c":4.5},"zeta":[1,2]}"#)
    );
}

#[test]
fn ids_that_agree_with_the_topic_are_accepted_and_not_extra() {
    let r = decode_both(json!({"occupied": true, "lot_id": "L1", "space_id": "S7"})).unwrap();
    assert_eq!(r.extra, None);
    let bytes = br#"{"occupied":true,"space_id":7}"#;
    let mut m = msg(bytes, None);
    m.space_id = "7";
    assert!(decode_reading(&m, &DecodeOptions::default()).is_ok());
}

#[test]
fn ids_that_contradict_the_topic_are_rejected() {
    let e = decode_both(json!({"occupied": true, "lot_id": "L2"})).unwrap_err();
    assert_eq!(e.reason(), "id_mismatch");
    assert_eq!(
        e.to_string(),
        "`lot_id` in the payload is \"L2\" but the topic says \"L1\"; publish to the topic of the space or drop the field"
    );
    let e = decode_both(json!({"occupied": true, "space_id": "S8"})).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("`space_id` in the payload is \"S8\""),
        "{e}"
    );
    let e = decode_both(json!({"occupied": true, "space_id": ["S7"]})).unwrap_err();
    assert_eq!(e.reason(), "invalid_field");
}

#[test]
fn empty_topic_ids_are_rejected() {
    let mut m = msg(br#"{"occupied":true}"#, None);
    m.lot_id = "";
    let e = decode_reading(&m, &DecodeOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the topic's `lot_id` segment is empty; publish to parking/<lot_id>/<space_id>"
    );
    m.lot_id = "L1";
    m.space_id = "";
    assert_eq!(
        decode_reading(&m, &DecodeOptions::default())
            .unwrap_err()
            .reason(),
        "empty_id"
    );
}

#[test]
fn battery_must_be_an_integer_0_to_100() {
    assert_eq!(
        err_text(json!({"occupied": true, "battery": 140})),
        "`battery` must be an integer 0–100, got 140"
    );
    assert_eq!(
        err_text(json!({"occupied": true, "battery": -1})),
        "`battery` must be an integer 0–100, got -1"
    );
    assert_eq!(
        err_text(json!({"occupied": true, "battery": "50"})),
        "`battery` must be an integer 0–100, got \"50\""
    );
    assert_eq!(
        err_text(json!({"occupied": true, "battery": 50.5})),
        "`battery` must be an integer 0–100, got 50.5"
    );
    assert_eq!(
        decode_both(json!({"occupied": true, "battery": 0}))
            .unwrap()
            .battery,
        Some(0)
    );
    assert_eq!(
        decode_both(json!({"occupied": true, "battery": 100}))
            .unwrap()
            .battery,
        Some(100)
    );
    assert_eq!(
        decode_json(json!({"occupied": true, "battery": 100.0}))
            .unwrap()
            .battery,
        Some(100)
    );
    assert_eq!(
        decode_both(json!({"occupied": true, "battery": null}))
            .unwrap()
            .battery,
        None
    );
}

#[test]
fn occupied_is_required_and_boolean() {
    let e = decode_both(json!({"ts": 1_795_255_200_000_i64})).unwrap_err();
    assert_eq!(e, DecodeError::MissingOccupied);
    assert_eq!(
        e.to_string(),
        "missing required field `occupied` (true or false)"
    );
    assert_eq!(
        err_text(json!({"occupied": "yes"})),
        "`occupied` must be true or false, got \"yes\""
    );
    assert_eq!(
        err_text(json!({"occupied": 1})),
        "`occupied` must be true or false, got 1"
    );
    assert_eq!(
        err_text(json!({"occupied": {"v": true}})),
        "`occupied` must be true or false, got an object"
    );
}

#[test]
fn ts_must_be_rfc3339_or_integer_ms() {
    let e = err_text(json!({"occupied": true, "ts": "21/11/2026 10:00"}));
    assert!(e.starts_with("`ts` must be an RFC 3339 timestamp like \"2026-11-21T10:00:00Z\" or integer epoch milliseconds, got \"21/11/2026 10:00\""), "{e}");
    let e = err_text(json!({"occupied": true, "ts": "2026-11-21T10:00:00"}));
    assert!(e.contains("a time zone is required"), "{e}");
    let e = err_text(json!({"occupied": true, "ts": 1_795_255_200_000.5}));
    assert!(e.starts_with("`ts` must be an RFC 3339"), "{e}");
    let e = err_text(json!({"occupied": true, "ts": true}));
    assert!(e.ends_with("got true"), "{e}");
}

#[test]
fn ts_in_seconds_or_from_an_unset_clock_is_refused() {
    let e = decode_both(json!({"occupied": true, "ts": 1_795_255_200_i64})).unwrap_err();
    assert_eq!(e.reason(), "ts_out_of_range");
    assert_eq!(
        e.to_string(),
        "`ts` 1795255200 (1970-01-21T18:40:55.200Z) is before 2000-01-01; the device clock is unset, or it sent seconds where milliseconds are expected"
    );
    let e = err_text(json!({"occupied": true, "ts": "1970-01-01T00:00:00Z"}));
    assert!(e.contains("before 2000-01-01"), "{e}");
    let e = err_text(json!({"occupied": true, "ts": -5}));
    assert!(e.contains("before 2000-01-01"), "{e}");
}

#[test]
fn ts_far_ahead_of_receive_time_is_refused() {
    let opts = DecodeOptions::default();
    let ahead_ok = format!(
        r#"{{"occupied":true,"ts":{}}}"#,
        RECEIVED + opts.max_ts_ahead_ms
    );
    assert!(decode_reading(&msg(ahead_ok.as_bytes(), None), &opts).is_ok());
    let e = err_text(json!({"occupied": true, "ts": "2026-11-21T13:01:00Z"}));
    assert_eq!(
        e,
        "`ts` 2026-11-21T13:01:00.000Z is 10800 s ahead of the time it was received (2026-11-21T10:01:00.000Z); check the device clock (at most 600 s ahead is accepted)"
    );
}

#[test]
fn duplicate_fields_are_refused() {
    let opts = DecodeOptions::default();
    let e =
        decode_reading(&msg(br#"{"occupied":true,"occupied":false}"#, None), &opts).unwrap_err();
    assert_eq!(e.to_string(), "field `occupied` appears more than once");
    let e = decode_reading(&msg(br#"{"occupied":true,"x":1,"x":2}"#, None), &opts).unwrap_err();
    assert_eq!(e, DecodeError::DuplicateField("x".into()));
}

#[test]
fn shapes_and_formats_that_are_not_a_reading() {
    let opts = DecodeOptions::default();
    let d = |p: &[u8], ct: Option<&str>| decode_reading(&msg(p, ct), &opts).unwrap_err();
    assert_eq!(d(b"", None), DecodeError::Empty);
    assert_eq!(
        d(b"[1,2]", None).to_string(),
        "payload must be a JSON object or a CBOR map, got a JSON array"
    );
    assert_eq!(d(b" \"on\"", None).reason(), "not_an_object");
    assert_eq!(
        d(b"42", None).to_string(),
        "payload must be a JSON object or a CBOR map, got a JSON number"
    );
    assert_eq!(
        d(b"   ", None).to_string(),
        "payload must be a JSON object or a CBOR map, got only whitespace"
    );
    assert_eq!(
        d(b"\x01\x02", None).to_string(),
        "payload must be a JSON object or a CBOR map, got bytes that are neither JSON nor CBOR (first byte 0x01)"
    );
    let e = d(br#"{"occupied": tru}"#, None);
    assert_eq!(e.reason(), "malformed");
    assert!(
        e.to_string()
            .starts_with("payload is not valid JSON: expected ident at line 1 column"),
        "{e}"
    );
    let e = d(br#"{"occupied": true} trailing"#, None);
    assert!(e.to_string().contains("trailing characters"), "{e}");
    let full = cbor(&json!({"occupied": true, "ts": 1_795_255_200_000_i64}));
    let e = d(&full[..full.len() - 3], None);
    assert_eq!(
        e.to_string(),
        format!(
            "payload is not valid CBOR: truncated after {} bytes",
            full.len() - 3
        )
    );
    let e = d(br#"{"occupied":true}"#, Some("text/plain"));
    assert_eq!(
        e.to_string(),
        "content type \"text/plain\" is not supported; send application/json or application/cbor (or no content type)"
    );
    let e = d(br#"{"occupied":true}"#, Some("application/cbor"));
    assert_eq!(e.reason(), "malformed");
    let e = d(&full, Some("application/json"));
    assert!(
        e.to_string().starts_with("payload is not valid JSON"),
        "{e}"
    );
    // CBOR with an integer map key
    let e = d(&[0xa1, 0x01, 0xf5], None);
    assert_eq!(e.reason(), "malformed");
}

#[test]
fn self_described_cbor_and_empty_content_type_are_accepted() {
    let opts = DecodeOptions::default();
    let mut tagged = vec![0xd9, 0xd9, 0xf7];
    tagged.extend(cbor(&json!({"occupied": true})));
    let r = decode_reading(&msg(&tagged, None), &opts).unwrap();
    assert!(r.occupied);
    let r = decode_reading(&msg(br#"{"occupied":false}"#, Some("")), &opts).unwrap();
    assert!(!r.occupied);
}

#[test]
fn messages_are_long_enough_to_act_on_but_bounded() {
    let long = "x".repeat(10_000);
    let e = err_text(json!({"occupied": long}));
    assert!(e.len() < 200, "{e}");
    assert!(e.ends_with("…\""), "{e}");
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e6f64..1e6).prop_map(serde_json::Value::from),
        "[a-z0-9:T.+-]{0,30}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("ts".to_owned()),
                    Just("occupied".to_owned()),
                    Just("battery".to_owned()),
                    Just("lot_id".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256),
                                ct in prop_oneof![Just(None), Just(Some("application/cbor")), Just(Some("application/json"))]) {
        let _ = decode_reading(&msg(&bytes, ct), &DecodeOptions::default());
    }

    #[test]
    fn cbor_prefixed_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..128), head in 0xa0u8..=0xbf) {
        let mut bytes = vec![head];
        bytes.extend(tail);
        let _ = decode_reading(&msg(&bytes, None), &DecodeOptions::default());
    }

    #[test]
    fn json_and_cbor_always_agree(v in prop::collection::btree_map(
        prop_oneof![Just("ts".to_owned()), Just("occupied".to_owned()), Just("battery".to_owned()),
                    Just("space_id".to_owned()), "[a-z]{1,6}"],
        arb_json(), 0..6).prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))) {
        // decode_both asserts agreement between the four decodings
        let _ = decode_both(v);
    }
}

#[test]
fn a_document_names_its_own_lot_and_space() {
    let opts = DecodeOptions::default();
    let now = 1_795_255_260_000;
    let r = decode_document(
        br#"{"lot_id":"L1","space_id":"S7","ts":1795255200000,"occupied":true,"fw":"2"}"#,
        now,
        &opts,
    )
    .unwrap();
    assert_eq!((r.lot_id.as_str(), r.space_id.as_str()), ("L1", "S7"));
    assert_eq!(r.extra.as_deref(), Some(r#"{"fw":"2"}"#));
    let e = decode_document(br#"{"space_id":"S7","occupied":true}"#, now, &opts).unwrap_err();
    assert_eq!(e.reason(), "missing_id");
    assert!(e.to_string().contains("`lot_id`"), "{e}");
    let e = decode_document(
        br#"{"lot_id":"","space_id":"S7","occupied":true}"#,
        now,
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.reason(), "missing_id");
    // The same rules as MQTT payloads.
    let e = decode_document(
        br#"{"lot_id":"L1","space_id":"S7","occupied":1}"#,
        now,
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.reason(), "invalid_field");
}

#[test]
fn ids_are_bounded_and_printable_without_wildcards() {
    let opts = DecodeOptions::default();
    let long = "x".repeat(MAX_ID_BYTES + 1);
    for (lot, space, what) in [
        ("P1", long.as_str(), "129 bytes"),
        ("P\u{0}1", "S1", "U+0000"),
        ("P1", "S\n1", "U+000A"),
        ("P#", "S1", "'#'"),
        ("P1", "S+", "'+'"),
        (
            "P\u{200B}1",
            "S1",
            "U+200B, an invisible formatting character",
        ),
        ("P1", "S\u{202E}1", "U+202E"),
        ("P1", "S\u{FEFF}", "U+FEFF"),
        ("P1", "S\u{2028}", "separator"),
        ("P1", "S\u{E000}", "private-use"),
    ] {
        let m = RawMessage {
            lot_id: lot,
            space_id: space,
            payload: br#"{"occupied":true}"#,
            content_type: None,
            received_at: 1_700_000_000_000,
        };
        let e = decode_reading(&m, &opts).unwrap_err();
        assert_eq!(e.reason(), "bad_id", "{lot:?}/{space:?}");
        assert!(e.to_string().contains(what), "{e}");
    }
    let ok = "y".repeat(MAX_ID_BYTES);
    // letters, marks and symbols of any script are fine
    let m = RawMessage {
        lot_id: "Größe-Ω 駐車場 é",
        space_id: "S1",
        payload: br#"{"occupied":true}"#,
        content_type: None,
        received_at: 1_700_000_000_000,
    };
    assert!(decode_reading(&m, &opts).is_ok());
    let m = RawMessage {
        lot_id: "Lot A-1",
        space_id: &ok,
        payload: br#"{"occupied":true}"#,
        content_type: None,
        received_at: 1_700_000_000_000,
    };
    assert!(decode_reading(&m, &opts).is_ok());
    // a backfill line's ids follow the same rules
    let e = decode_document(
        br#"{"lot_id":"A/B","space_id":"S1","occupied":true,"ts":1700000000000}"#,
        1_700_000_000_000,
        &opts,
    )
    .unwrap_err();
    assert_eq!(e.reason(), "bad_id");
}

#[test]
fn every_ascii_character_is_judged_alike_by_the_fast_path_and_the_full_rules() {
    for b in 0u8..0x80 {
        let c = char::from(b);
        let expected_ok = !c.is_control() && !matches!(c, '#' | '+' | '/');
        // alone (the ASCII fast path) and next to a non-ASCII letter (the full rules)
        for id in [format!("a{c}b"), format!("é{c}b")] {
            assert_eq!(
                valid_id("space_id", &id).is_ok(),
                expected_ok,
                "byte 0x{b:02X} in {id:?}"
            );
        }
    }
}
