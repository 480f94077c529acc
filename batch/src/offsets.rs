//! Kafka offset bookkeeping in Delta transaction identifiers — the mechanism of Spark's streaming
//! Delta sink. Pure: the decisions are separate from the I/O that gathers their inputs.
//!
//! Every commit that lands records of partition `p` also sets, in the same Delta commit, two
//! application transactions (`txn` actions):
//! * `fjord:<cluster-id>:<topic>:<p>` = the next offset to read, and
//! * `fjord:<cluster-id>:<topic>:<p>:check` = a fingerprint of the last record landed.
//!
//! The cluster id in the name means a replaced cluster starts from its beginning. The fingerprint
//! catches a topic that was deleted and recreated on the same cluster: before resuming, the job
//! reads the record just before the stored offset and compares. Offsets that went backwards
//! (the stored offset is past the end of the partition) mean the same.

/// Transaction-identifier name of `partition` of `topic` on the cluster `cluster_id`.
pub fn app_id(cluster_id: &str, topic: &str, partition: i32) -> String {
    format!("fjord:{cluster_id}:{topic}:{partition}")
}

/// Name of the fingerprint transaction identifier that goes with [`app_id`].
pub fn check_app_id(cluster_id: &str, topic: &str, partition: i32) -> String {
    format!("{}:check", app_id(cluster_id, topic, partition))
}

/// A stable 63-bit fingerprint of a record: FNV-1a over its key, payload and timestamp.
pub fn fingerprint(key: Option<&[u8]>, payload: Option<&[u8]>, timestamp: Option<i64>) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for part in [key, payload] {
        match part {
            Some(b) => {
                eat(&(b.len() as u64).to_le_bytes());
                eat(b);
            }
            None => eat(&u64::MAX.to_le_bytes()),
        }
    }
    eat(&timestamp.unwrap_or(i64::MIN).to_le_bytes());
    (h >> 1) as i64
}

/// How many records before the resume offset a run starts fetching (and skips). Kafka returns the
/// whole record batch that contains a fetch offset, but tansu 0.6 returns only batches that *start*
/// at or after it, so a resume in the middle of a batch would silently skip the rest of that
/// batch. Starting this far back (librdkafka's default `batch.num.messages`) covers every batch a
/// librdkafka producer writes; on Kafka it costs a few milliseconds of skipped records.
pub const RESUME_LOOKBACK: i64 = 10_000;

/// The offset to fetch from to resume at `next` in a partition that starts at `low`.
pub fn fetch_from(next: i64, low: i64) -> i64 {
    next.saturating_sub(RESUME_LOOKBACK).max(low)
}

/// What was found at the offset just before the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A record with this fingerprint.
    Found(i64),
    /// Nothing any more: the offset is below the partition's log start (retention deleted it).
    Deleted,
    /// Nothing: the offset is at or past the end of the partition.
    PastEnd,
}

/// Where to start reading a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// From the first record still in the partition.
    Beginning {
        /// Why, when the partition had been landed before (a recreated topic): worth a warning.
        reset: Option<String>,
    },
    /// From this offset.
    At {
        /// The offset.
        offset: i64,
        /// Records that were deleted by retention before they were landed, if any.
        skipped: Option<(i64, i64)>,
    },
}

/// Decides where to resume `partition`, from the stored next offset and fingerprint, what the
/// probe found before the stored offset and the partition's log start offset `low`.
pub fn decide(stored: Option<i64>, check: Option<i64>, probe: Option<Probe>, low: i64) -> Start {
    let Some(next) = stored else {
        return Start::Beginning { reset: None };
    };
    let resume = |next: i64| {
        if next < low {
            Start::At {
                offset: low,
                skipped: Some((next, low)),
            }
        } else {
            Start::At {
                offset: next,
                skipped: None,
            }
        }
    };
    match (probe, check) {
        (None, _) => resume(next),
        (Some(Probe::Found(fp)), Some(expected)) if fp != expected => Start::Beginning {
            reset: Some(format!(
                "the record at offset {} is not the one landed before: the topic was recreated",
                next - 1
            )),
        },
        (Some(Probe::Found(_)), _) => resume(next),
        (Some(Probe::Deleted), _) => resume(next),
        (Some(Probe::PastEnd), _) => Start::Beginning {
            reset: Some(format!(
                "offset {} was landed before but the partition now ends earlier: the topic was \
                 recreated or truncated",
                next - 1
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_cluster_topic_and_partition() {
        assert_eq!(
            app_id("abc", "fjord.readings", 3),
            "fjord:abc:fjord.readings:3"
        );
        assert_eq!(
            check_app_id("abc", "fjord.readings", 3),
            "fjord:abc:fjord.readings:3:check"
        );
    }

    #[test]
    fn fingerprints_tell_records_apart() {
        let a = fingerprint(Some(b"L1"), Some(b"{}"), Some(1));
        assert_eq!(a, fingerprint(Some(b"L1"), Some(b"{}"), Some(1)));
        assert!(a >= 0);
        assert_ne!(a, fingerprint(Some(b"L1"), Some(b"{}"), Some(2)));
        assert_ne!(a, fingerprint(Some(b"L1{"), Some(b"}"), Some(1)));
        assert_ne!(a, fingerprint(None, Some(b"L1{}"), Some(1)));
    }

    #[test]
    fn resumes_fetch_a_batch_back_but_never_before_the_log_start() {
        assert_eq!(fetch_from(50_000, 0), 40_000);
        assert_eq!(fetch_from(5_000, 0), 0);
        assert_eq!(fetch_from(5_000, 4_000), 4_000);
        assert_eq!(fetch_from(5_000, 9_000), 9_000);
    }

    #[test]
    fn a_new_partition_starts_at_the_beginning() {
        assert_eq!(
            decide(None, None, None, 0),
            Start::Beginning { reset: None }
        );
    }

    #[test]
    fn a_matching_fingerprint_resumes() {
        let s = decide(Some(100), Some(7), Some(Probe::Found(7)), 0);
        assert_eq!(
            s,
            Start::At {
                offset: 100,
                skipped: None
            }
        );
    }

    #[test]
    fn a_different_record_means_a_recreated_topic() {
        let s = decide(Some(100), Some(7), Some(Probe::Found(8)), 0);
        assert!(matches!(s, Start::Beginning { reset: Some(_) }), "{s:?}");
    }

    #[test]
    fn offsets_going_backwards_mean_a_recreated_topic() {
        let s = decide(Some(100), Some(7), Some(Probe::PastEnd), 0);
        assert!(matches!(s, Start::Beginning { reset: Some(_) }), "{s:?}");
    }

    #[test]
    fn records_deleted_by_retention_are_reported() {
        let s = decide(Some(100), Some(7), Some(Probe::Deleted), 150);
        assert_eq!(
            s,
            Start::At {
                offset: 150,
                skipped: Some((100, 150))
            }
        );
        let s = decide(Some(100), Some(7), Some(Probe::Deleted), 90);
        assert_eq!(
            s,
            Start::At {
                offset: 100,
                skipped: None
            }
        );
    }
}
