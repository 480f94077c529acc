//! The MQTT wire codec of the broker front and the bridge: any byte stream a client (or a broker)
//! sends is split into frames and each frame parsed by its type, as protocol 3.1.1 and 5. Nothing
//! may panic, loop or allocate beyond the frame bound.

#![no_main]

use bytes::{Bytes, BytesMut};
use fjord_ingest::wire;
use libfuzzer_sys::fuzz_target;

/// The front's bound on a frame body in these runs (the real one comes from the config).
const MAX_BODY: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    // at most as many frames as there are bytes: a frame takes at least two
    for _ in 0..data.len() {
        let frame = match wire::split_frame(&mut buf, MAX_BODY) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => break,
        };
        let body: Bytes = frame.body.clone();
        match frame.kind() {
            1 => {
                if let Ok(c) = wire::parse_connect(&body) {
                    // what the bridge sends must parse back to the same fields
                    let again = wire::encode_connect(&c);
                    let mut b = BytesMut::from(&again[..]);
                    let f = wire::split_frame(&mut b, usize::MAX)
                        .expect("an encoded CONNECT splits")
                        .expect("an encoded CONNECT is whole");
                    let back = wire::parse_connect(&f.body).expect("an encoded CONNECT parses");
                    assert_eq!(back.client_id, c.client_id);
                    assert_eq!(back.level, c.level);
                }
            }
            2 => {
                let _ = wire::parse_connack(&body);
            }
            3 => {
                for v5 in [false, true] {
                    let _ = wire::parse_publish(frame.first, &body, v5);
                }
            }
            4..=7 | 11 => {
                let _ = wire::parse_pkid(&body);
            }
            8 => {
                for v5 in [false, true] {
                    let _ = wire::parse_subscribe(&body, v5);
                }
            }
            9 => {
                for v5 in [false, true] {
                    let _ = wire::parse_suback(&body, v5);
                }
            }
            _ => {}
        }
    }
});
