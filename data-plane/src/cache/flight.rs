//! Coalescing (single-flight): identical cacheable reads in flight at the
//! same time share one upstream request.
//!
//! The first caller of a key becomes its [`Leader`]; callers that arrive
//! while it flies join as waiters and read the same outcome. The map of
//! flights is sharded, and a shard's lock is held only to look up, insert
//! or remove a key (never across an await), and only on cache misses of
//! cacheable reads. The leader's work runs in a task of its own (see the
//! dispatcher), so a client that hangs up cancels nothing for the others;
//! each waiter waits under its own deadline and gives up alone. A leader
//! dropped without an outcome (its task panicked) closes the flight: the
//! waiters see it closed, and the key is free for the next caller.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

const SHARDS: usize = 16;

type Slot<T> = watch::Receiver<Option<Arc<T>>>;
type Shard<T> = Mutex<HashMap<Box<str>, Slot<T>>>;

/// The flights in the air, by cache key.
#[derive(Debug)]
pub struct Flights<T> {
    shards: Box<[Shard<T>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Default::default(),
        }
    }
}

/// How a caller takes part in the flight of its key.
#[derive(Debug)]
pub enum Joined<T> {
    /// No flight was in the air: this caller sends the request.
    Leader(Leader<T>),
    /// A flight is in the air: wait for its outcome.
    Waiter(Waiter<T>),
}

/// The caller that sends the request; [`Leader::land`] gives everyone the
/// outcome.
#[derive(Debug)]
pub struct Leader<T> {
    flights: Arc<Flights<T>>,
    key: Box<str>,
    tx: watch::Sender<Option<Arc<T>>>,
}

/// A caller waiting for another's request.
#[derive(Debug)]
pub struct Waiter<T> {
    rx: Slot<T>,
}

impl<T> Flights<T> {
    fn shard(&self, key: &str) -> &Shard<T> {
        // SHARDS is a power of two; the cast keeps the low bits.
        &self.shards[(self.hasher.hash_one(key) as usize) & (SHARDS - 1)]
    }

    /// Joins the flight of `key`, or starts one.
    pub fn join(self: &Arc<Self>, key: &str) -> Joined<T> {
        let mut map = self
            .shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = map.get(key) {
            return Joined::Waiter(Waiter { rx: rx.clone() });
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.into(), rx);
        Joined::Leader(Leader {
            flights: self.clone(),
            key: key.into(),
            tx,
        })
    }

    /// Flights in the air.
    #[cfg(test)]
    fn in_air(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    fn remove(&self, key: &str) {
        self.shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

impl<T> Leader<T> {
    /// Ends the flight with `outcome`: later callers start their own (or
    /// find the answer in the cache, which the leader fills first), and
    /// every waiter gets `outcome`. Returns it for the leader's own use.
    pub fn land(self, outcome: T) -> Arc<T> {
        let outcome = Arc::new(outcome);
        self.flights.remove(&self.key);
        // No receiver left is fine: every waiter gave up.
        let _ = self.tx.send(Some(outcome.clone()));
        outcome
    }
}

impl<T> Drop for Leader<T> {
    fn drop(&mut self) {
        // Landed or not, the key is free again; without an outcome the
        // sender's drop tells the waiters the flight is gone.
        if self.tx.borrow().is_none() {
            self.flights.remove(&self.key);
        }
    }
}

impl<T> Waiter<T> {
    /// The flight's outcome; `None` when its leader went away without one.
    pub async fn outcome(mut self) -> Option<Arc<T>> {
        match self.rx.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_and_every_waiter_gets_its_outcome() {
        let flights = Arc::new(Flights::<u32>::default());
        let Joined::Leader(leader) = flights.join("k") else {
            panic!("first is the leader")
        };
        let waiters: Vec<_> = (0..3)
            .map(|_| match flights.join("k") {
                Joined::Waiter(w) => tokio::spawn(w.outcome()),
                Joined::Leader(_) => panic!("a flight is in the air"),
            })
            .collect();
        assert!(matches!(flights.join("other"), Joined::Leader(_)));
        assert_eq!(*leader.land(7), 7);
        for w in waiters {
            assert_eq!(w.await.unwrap().as_deref(), Some(&7));
        }
        assert_eq!(flights.in_air(), 0);
        assert!(
            matches!(flights.join("k"), Joined::Leader(_)),
            "landed: free"
        );
    }

    #[tokio::test]
    async fn a_leader_gone_without_an_outcome_frees_the_key_and_tells_the_waiters() {
        let flights = Arc::new(Flights::<u32>::default());
        let leader = flights.join("k");
        let Joined::Waiter(w) = flights.join("k") else {
            panic!("a waiter")
        };
        drop(leader);
        assert_eq!(w.outcome().await, None);
        assert_eq!(flights.in_air(), 0);
    }
}
