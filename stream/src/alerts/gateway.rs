//! `gateway_offline` (docs/contract.md §5): the state of one partition of `fjord.presence`. A gateway's last
//! will (`offline`) fires, its next `online` resolves. Checkpointed like the readings partitions,
//! in the changelog partition `p mod n` under keys `presence/<p>/…`.

use std::collections::BTreeMap;

use fjord_core::model::Alert;
use fjord_core::time::{TimestampMs, parse_rfc3339};
use serde::{Deserialize, Serialize};

use super::Rules;
use super::machine::{self, ActiveMap, Observation, Subject};

/// A `fjord.presence` record value.
#[derive(Debug, Deserialize)]
struct Presence {
    gateway_id: String,
    status: String,
    ts: String,
}

/// The checkpointed state of one presence partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PresenceState {
    /// The next offset to read.
    pub next_offset: i64,
    /// The last status of each gateway seen.
    pub status: BTreeMap<String, bool>,
    active: ActiveMap,
}

/// Prefix of the checkpoint key of presence partition `p`.
pub fn checkpoint_key(p: i32) -> String {
    format!("presence/{p}")
}

impl PresenceState {
    /// Applies the record at `offset`; records at or before the checkpoint are skipped. Returns
    /// an error text for a record that does not decode (it is dead-lettered by the caller).
    pub fn process(
        &mut self,
        rules: &Rules,
        offset: i64,
        payload: &[u8],
        out: &mut Vec<Alert>,
    ) -> Result<bool, String> {
        if offset < self.next_offset {
            return Ok(false);
        }
        self.next_offset = offset + 1;
        let p: Presence =
            serde_json::from_slice(payload).map_err(|e| format!("not a presence record ({e})"))?;
        let online = match p.status.as_str() {
            "online" => true,
            "offline" => false,
            other => {
                return Err(format!(
                    "presence status must be online or offline, got {other:?}"
                ));
            }
        };
        let ts = parse_rfc3339(&p.ts).map_err(|e| format!("presence ts {:?}: {e}", p.ts))?;
        self.status.insert(p.gateway_id.clone(), online);
        if let Some(rule) = &rules.gateway_offline {
            machine::observe(
                &mut self.active,
                rule,
                || Subject::gateway(&p.gateway_id),
                Observation::holds(!online),
                ts,
                None,
                out,
            );
        }
        Ok(true)
    }

    /// Repeats of firing alerts, driven by the wall clock (presence has no event-time stream).
    pub fn tick(&mut self, rules: &Rules, wall: TimestampMs, out: &mut Vec<Alert>) -> bool {
        if machine::next_due(&self.active, rules, |_| None) > wall {
            return false;
        }
        machine::on_time(&mut self.active, rules, wall, |_| None, out);
        true
    }

    /// Alerts firing.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// The checkpoint value.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Reads a checkpoint value back.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("presence checkpoint: {e}"))
    }
}
