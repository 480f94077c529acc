//! What the dispatcher of one webhook has in hand, without I/O: the records read but not yet
//! settled, queued per alert key (one delivery at a time per key, so changes of one alert arrive
//! in order while other keys go ahead), and per partition the offset that can be committed —
//! the first record not yet settled, so a restart never skips an undelivered alert.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// A record of `fjord.alerts` to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The alert key.
    pub key: String,
    /// The alert id (`X-Fjord-Delivery`).
    pub id: String,
    /// The body to POST (the record value as written by the stream processor).
    pub body: Vec<u8>,
    /// Kafka timestamp of the record, ms.
    pub produced_at: i64,
}

/// Records in hand and committable offsets.
#[derive(Debug, Default)]
pub struct Queues {
    by_key: HashMap<String, VecDeque<Item>>,
    /// Keys whose head is being delivered.
    busy: BTreeSet<String>,
    /// Per partition: offsets read and not yet settled.
    open: HashMap<i32, BTreeSet<i64>>,
    /// Per partition: the next offset after the highest read.
    next: HashMap<i32, i64>,
    /// Per key: the id of the last settled delivery (a replayed duplicate is skipped).
    last_id: HashMap<String, String>,
    len: usize,
}

/// What to do with a record just read.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Start delivering it now (its key was idle).
    Start(Item),
    /// Queued behind an earlier change of the same alert.
    Queued,
    /// Same id as the last delivery of its key (a replay): settled without sending.
    Duplicate,
}

impl Queues {
    /// Records read and not yet settled.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing in hand.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A record this webhook does not want (rule filter, undecodable): settled at once.
    pub fn skip(&mut self, partition: i32, offset: i64) {
        self.seen(partition, offset);
    }

    fn seen(&mut self, partition: i32, offset: i64) {
        let next = self.next.entry(partition).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
    }

    /// Takes a record in.
    pub fn admit(&mut self, item: Item) -> Admit {
        self.seen(item.partition, item.offset);
        if self.last_id.get(&item.key) == Some(&item.id)
            && self.by_key.get(&item.key).is_none_or(VecDeque::is_empty)
        {
            return Admit::Duplicate;
        }
        self.open
            .entry(item.partition)
            .or_default()
            .insert(item.offset);
        self.len += 1;
        if self.busy.contains(&item.key) {
            self.by_key
                .entry(item.key.clone())
                .or_default()
                .push_back(item);
            Admit::Queued
        } else {
            self.busy.insert(item.key.clone());
            Admit::Start(item)
        }
    }

    /// The delivery of `item` ended (delivered or dead-lettered); returns the next change of the
    /// same alert to deliver, if any.
    pub fn settle(&mut self, item: &Item) -> Option<Item> {
        if let Some(open) = self.open.get_mut(&item.partition) {
            open.remove(&item.offset);
        }
        self.len = self.len.saturating_sub(1);
        self.last_id.insert(item.key.clone(), item.id.clone());
        let next = self.by_key.get_mut(&item.key).and_then(VecDeque::pop_front);
        match next {
            Some(n) => Some(n),
            None => {
                self.by_key.remove(&item.key);
                self.busy.remove(&item.key);
                None
            }
        }
    }

    /// Per partition, the offset to commit: the first unsettled record, or after the last read.
    pub fn committable(&self) -> Vec<(i32, i64)> {
        let mut out: Vec<(i32, i64)> = self
            .next
            .iter()
            .map(|(&p, &next)| {
                let first_open = self.open.get(&p).and_then(|o| o.first().copied());
                (p, first_open.unwrap_or(next))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Forgets partitions taken away by a rebalance (their records are delivered by the new owner).
    pub fn forget_partitions(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.next.remove(p);
            self.open.remove(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(partition: i32, offset: i64, key: &str, id: &str) -> Item {
        Item {
            partition,
            offset,
            key: key.into(),
            id: id.into(),
            body: Vec::new(),
            produced_at: 0,
        }
    }

    #[test]
    fn one_delivery_at_a_time_per_key_and_others_go_ahead() {
        let mut q = Queues::default();
        let a1 = item(0, 10, "a", "a1");
        assert_eq!(q.admit(a1.clone()), Admit::Start(a1.clone()));
        assert_eq!(q.admit(item(0, 11, "a", "a2")), Admit::Queued);
        let b1 = item(0, 12, "b", "b1");
        assert_eq!(q.admit(b1.clone()), Admit::Start(b1.clone()));
        assert_eq!(q.len(), 3);
        // b settles first: offset 10 is still open, so the commit stays at 10
        assert_eq!(q.settle(&b1), None);
        assert_eq!(q.committable(), vec![(0, 10)]);
        let a2 = q.settle(&a1).unwrap();
        assert_eq!(a2.id, "a2");
        assert_eq!(q.committable(), vec![(0, 11)]);
        assert_eq!(q.settle(&a2), None);
        assert_eq!(q.committable(), vec![(0, 13)]);
        assert!(q.is_empty());
    }

    #[test]
    fn skipped_records_advance_the_offset_and_replayed_ids_are_not_sent_twice() {
        let mut q = Queues::default();
        q.skip(1, 5);
        assert_eq!(q.committable(), vec![(1, 6)]);
        let a = item(1, 6, "k", "same");
        assert!(matches!(q.admit(a.clone()), Admit::Start(_)));
        q.settle(&a);
        assert_eq!(q.admit(item(1, 7, "k", "same")), Admit::Duplicate);
        assert_eq!(q.committable(), vec![(1, 8)]);
        q.forget_partitions(&[1]);
        assert!(q.committable().is_empty());
    }
}
