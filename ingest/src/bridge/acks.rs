//! Acknowledging MQTT messages late and in order.
//!
//! Every received message gets a sequence number when it is handed to Kafka. Its PUBACK may only go
//! out once Kafka has acknowledged it *and* every message received before it has been acknowledged
//! too (MQTT requires PUBACKs in the order of the PUBLISHes). A message received on an earlier
//! connection is never acknowledged on a later one: the broker redelivers it there anyway, and its
//! packet id may by then belong to another message. Pure logic.

use std::collections::VecDeque;

#[derive(Debug)]
struct Slot<T> {
    epoch: u64,
    done: bool,
    item: T,
}

/// Messages in flight, in receive order.
#[derive(Debug)]
pub struct AckQueue<T> {
    first_seq: u64,
    slots: VecDeque<Slot<T>>,
    epoch: u64,
}

impl<T> Default for AckQueue<T> {
    fn default() -> Self {
        Self {
            first_seq: 0,
            slots: VecDeque::new(),
            epoch: 0,
        }
    }
}

impl<T> AckQueue<T> {
    /// Starts a new MQTT connection: what is in flight from before will not be acknowledged.
    pub fn new_connection(&mut self) {
        self.epoch += 1;
    }

    /// Adds a message received on the current connection; returns its sequence number.
    pub fn push(&mut self, item: T) -> u64 {
        self.slots.push_back(Slot {
            epoch: self.epoch,
            done: false,
            item,
        });
        self.first_seq + self.slots.len() as u64 - 1
    }

    /// The item of `seq`, while it is in flight.
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut T> {
        let i = seq.checked_sub(self.first_seq)?;
        self.slots
            .get_mut(usize::try_from(i).ok()?)
            .map(|s| &mut s.item)
    }

    /// Marks `seq` as stored in Kafka and returns, in order, the items now ready: the `bool` says
    /// whether it may be acknowledged (received on the current connection).
    pub fn complete(&mut self, seq: u64) -> Vec<(T, bool)> {
        if let Some(i) = seq.checked_sub(self.first_seq)
            && let Some(slot) = usize::try_from(i).ok().and_then(|i| self.slots.get_mut(i))
        {
            slot.done = true;
        }
        let mut ready = Vec::new();
        while self.slots.front().is_some_and(|s| s.done) {
            if let Some(s) = self.slots.pop_front() {
                self.first_seq += 1;
                ready.push((s.item, s.epoch == self.epoch));
            }
        }
        ready
    }

    /// Messages in flight (received, not yet released).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn releases_in_receive_order() {
        let mut q = AckQueue::default();
        let a = q.push('a');
        let b = q.push('b');
        let c = q.push('c');
        assert!(q.complete(c).is_empty(), "c must wait for a and b");
        assert!(q.complete(b).is_empty());
        assert_eq!(q.complete(a), vec![('a', true), ('b', true), ('c', true)]);
        assert!(q.is_empty());
        let d = q.push('d');
        assert_eq!(d, 3);
        assert_eq!(q.complete(d), vec![('d', true)]);
    }

    #[test]
    fn messages_of_an_old_connection_are_not_acknowledged() {
        let mut q = AckQueue::default();
        let a = q.push('a');
        q.new_connection();
        let b = q.push('b');
        assert_eq!(q.complete(b), vec![]);
        assert_eq!(q.complete(a), vec![('a', false), ('b', true)]);
    }

    proptest! {
        #[test]
        fn any_completion_order_releases_everything_once_in_order(order in Just((0..50u64).collect::<Vec<_>>()).prop_shuffle()) {
            let mut q = AckQueue::default();
            for i in 0..50u64 { q.push(i); }
            let mut released = Vec::new();
            for seq in order {
                released.extend(q.complete(seq).into_iter().map(|(i, _)| i));
            }
            prop_assert_eq!(released, (0..50u64).collect::<Vec<_>>());
            prop_assert!(q.is_empty());
        }
    }
}
