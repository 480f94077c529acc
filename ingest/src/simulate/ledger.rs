//! `fjord simulate --record FILE`: which messages the broker acknowledged, one JSON line each.
//!
//! A cluster test (or a user proving "nothing acknowledged was lost") needs the exact set of
//! messages the MQTT broker took responsibility for, not a count. rumqttc reports a PUBACK by
//! packet id only, so [`AckTracker`] pairs ids with messages: publishes leave a connection in the
//! order they were requested, and each one's first `Outgoing::Publish(pkid)` names the id it got.
//! A retransmission after a reconnect reuses an id that is still in flight and is not paired again.
//! The matching is pure and unit-tested; [`Ledger`] only writes the lines.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::{Error, Result};

/// One published message: its topic and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// MQTT topic.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// Pairs the packet ids of one connection with the messages they carry.
#[derive(Debug, Default)]
pub struct AckTracker {
    /// Requested, not yet written to the network (no packet id yet), in request order.
    queued: VecDeque<Published>,
    /// Written with this packet id, not yet acknowledged.
    in_flight: HashMap<u16, Published>,
    /// The pairing broke (the broker lost the session and the client dropped what was in flight):
    /// nothing more is paired or recorded.
    abandoned: bool,
}

impl AckTracker {
    /// A message is about to be handed to the client (call before `publish`).
    pub fn requested(&mut self, m: Published) {
        if !self.abandoned {
            self.queued.push_back(m);
        }
    }

    /// The connection wrote a PUBLISH with `pkid`. The first time an id is seen it belongs to the
    /// oldest requested message; an id still in flight is a retransmission.
    pub fn written(&mut self, pkid: u16) {
        if pkid == 0 || self.in_flight.contains_key(&pkid) {
            return;
        }
        if let Some(m) = self.queued.pop_front() {
            self.in_flight.insert(pkid, m);
        }
    }

    /// The broker acknowledged `pkid`: the message it carried, if known.
    pub fn acked(&mut self, pkid: u16) -> Option<Published> {
        self.in_flight.remove(&pkid)
    }

    /// Stops pairing for good: the client dropped messages without telling which, so later ids
    /// could be paired with the wrong message. A record that stops early is incomplete, never wrong.
    pub fn abandon(&mut self) {
        self.abandoned = true;
        self.queued.clear();
        self.in_flight.clear();
    }

    /// Whether [`abandon`](Self::abandon) was called.
    pub fn is_abandoned(&self) -> bool {
        self.abandoned
    }

    /// Messages requested or written and not acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.queued.len() + self.in_flight.len()
    }
}

#[derive(Serialize)]
struct Line<'a> {
    topic: &'a str,
    payload: std::borrow::Cow<'a, str>,
    /// When the PUBACK arrived (Unix ms).
    acked_at: i64,
}

/// The file of acknowledged messages, shared by every connection of the simulator.
#[derive(Clone)]
pub struct Ledger {
    out: Arc<Mutex<std::io::BufWriter<std::fs::File>>>,
}

impl Ledger {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let f = std::fs::File::create(path).map_err(|source| Error::Io {
            context: format!("cannot create the record file {}", path.display()),
            source,
        })?;
        Ok(Self {
            out: Arc::new(Mutex::new(std::io::BufWriter::new(f))),
        })
    }

    /// Appends one acknowledged message as `{"topic": …, "payload": …, "acked_at": <Unix ms>}`
    /// (payload as UTF-8 text, invalid bytes replaced).
    pub fn write(&self, m: &Published) -> Result<()> {
        let line = Line {
            topic: &m.topic,
            payload: String::from_utf8_lossy(&m.payload),
            acked_at: fjord_core::time::now_ms(),
        };
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::to_writer(&mut *out, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|source| Error::Io {
                context: "cannot write the record file".into(),
                source,
            })
    }

    /// Writes what is buffered.
    pub fn flush(&self) -> Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.flush().map_err(|source| Error::Io {
            context: "cannot write the record file".into(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(i: u8) -> Published {
        Published {
            topic: format!("parking/L/S{i}"),
            payload: vec![i],
        }
    }

    #[test]
    fn acks_are_paired_with_messages_in_request_order() {
        let mut t = AckTracker::default();
        for i in 1..=3 {
            t.requested(m(i));
        }
        t.written(7);
        t.written(8);
        assert_eq!(t.acked(8), Some(m(2)));
        t.written(9);
        assert_eq!(t.acked(7), Some(m(1)));
        assert_eq!(t.acked(9), Some(m(3)));
        assert_eq!(t.unacknowledged(), 0);
    }

    #[test]
    fn a_retransmission_is_not_paired_again() {
        let mut t = AckTracker::default();
        t.requested(m(1));
        t.requested(m(2));
        t.written(1);
        // the connection dropped; pkid 1 is sent again after the reconnect, then the next message
        t.written(1);
        t.written(2);
        assert_eq!(t.acked(1), Some(m(1)));
        assert_eq!(t.acked(2), Some(m(2)));
        // an id is reused once acknowledged
        t.requested(m(3));
        t.written(1);
        assert_eq!(t.acked(1), Some(m(3)));
    }

    #[test]
    fn an_abandoned_tracker_pairs_nothing_more() {
        let mut t = AckTracker::default();
        t.requested(m(1));
        t.written(1);
        t.abandon();
        t.requested(m(2));
        t.written(2);
        assert_eq!(t.acked(1), None);
        assert_eq!(t.acked(2), None);
        assert!(t.is_abandoned());
        assert_eq!(t.unacknowledged(), 0);
    }

    #[test]
    fn an_unknown_or_repeated_ack_yields_nothing() {
        let mut t = AckTracker::default();
        t.requested(m(1));
        t.written(4);
        assert_eq!(t.acked(5), None);
        assert_eq!(t.acked(4), Some(m(1)));
        assert_eq!(t.acked(4), None);
    }

    #[test]
    fn the_ledger_writes_one_json_line_per_message() {
        let dir = std::env::temp_dir().join(format!("fjord-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("acked.jsonl");
        let l = Ledger::create(&path).unwrap();
        l.write(&Published {
            topic: "parking/a/S1".into(),
            payload: br#"{"occupied":true}"#.to_vec(),
        })
        .unwrap();
        l.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["topic"], "parking/a/S1");
        assert_eq!(v["payload"], r#"{"occupied":true}"#);
        assert!(v["acked_at"].as_i64().unwrap() > 1_700_000_000_000);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
