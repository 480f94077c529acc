//! The reading decoder every path shares (bridge, HTTP ingest, stream processor, batch import):
//! any payload, with any or no content type, is a reading or a specific refusal. A reading that is
//! accepted keeps its ids within the id rules and its numbers finite.

#![no_main]

use fjord_core::decode::{self, DecodeOptions, RawMessage};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some("application/json"),
    Some("application/cbor"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let opts = DecodeOptions::default();
    let received_at = 1_795_255_200_000;
    let msg = RawMessage {
        lot_id: "L1",
        space_id: "S1",
        payload,
        content_type: CONTENT_TYPES[usize::from(pick) % CONTENT_TYPES.len()],
        received_at,
    };
    if let Ok(r) = decode::decode_reading(&msg, &opts) {
        assert_eq!((r.lot_id.as_str(), r.space_id.as_str()), ("L1", "S1"));
        assert!(r.ts <= received_at + opts.max_ts_ahead_ms, "{r:?}");
    }
    if let Ok(r) = decode::decode_document(payload, received_at, &opts) {
        assert!(decode::valid_id("lot_id", &r.lot_id).is_ok(), "{r:?}");
        assert!(decode::valid_id("space_id", &r.space_id).is_ok(), "{r:?}");
    }
    if let Ok(text) = std::str::from_utf8(payload) {
        let _ = decode::valid_id("space_id", text);
    }
});
