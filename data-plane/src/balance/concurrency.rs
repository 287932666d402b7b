//! The per-upstream concurrency limit, with bounded priority queues.
//!
//! Below `max_concurrency` a try takes a slot with one compare-and-swap on
//! an atomic counter: no lock, no allocation. Only when the upstream is
//! saturated does a request join a queue of its priority class; the queues
//! sit behind a `std::sync::Mutex` whose critical sections are a few
//! pointer moves (never held across an `.await`), taken only by requests
//! that must wait anyway and by releases that find someone waiting.
//!
//! A released slot is handed directly to the first waiter of the highest
//! class (fast-track, then high, then low; FIFO within a class) through a
//! oneshot channel, so a newcomer cannot overtake the queue: the fast path
//! is only open while nobody waits.
//!
//! The one race that matters, "a slot is released just as a request decides
//! to queue", is closed Dekker-style with sequentially consistent atomics:
//! a releaser decrements `in_flight` and then reads `waiting`; a queuing
//! request increments `waiting` and then (under the lock) tries to take a
//! free slot for the queue's head. At least one of them sees the other, so
//! no waiter is left behind a free slot.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::priority::Priority;

/// Why a request could not get a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue of its class already holds `max_queue` requests.
    #[error("the {0} queue of this upstream is full")]
    Full(&'static str),
    /// It waited as long as it may.
    #[error("no free slot within {0:?}")]
    Timeout(Duration),
}

type Queues = [VecDeque<oneshot::Sender<Permit>>; 3];

/// Concurrency limit and priority queues of one upstream in one data plane.
#[derive(Debug)]
pub struct Limiter {
    max: AtomicU32,
    in_flight: AtomicU32,
    /// Entries in `queues`, including waiters that already gave up (they
    /// are skipped when popped). Non-zero closes the fast path.
    waiting: AtomicU32,
    /// Requests currently waiting, by class (the queue-depth gauge).
    depth: [AtomicU32; 3],
    queues: Mutex<Queues>,
}

/// A slot on an upstream; released when dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    armed: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            self.limiter.release();
        }
    }
}

impl Limiter {
    /// A limiter allowing `max` concurrent tries.
    pub fn new(max: u32) -> Self {
        Self {
            max: AtomicU32::new(max.max(1)),
            in_flight: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            depth: Default::default(),
            queues: Mutex::new(Default::default()),
        }
    }

    /// Applies a new `max_concurrency` from a snapshot; a raise lets
    /// waiters through at once.
    pub fn set_max(self: &Arc<Self>, max: u32) {
        let max = max.max(1);
        if self.max.swap(max, Ordering::SeqCst) < max {
            let mut queues = self.lock();
            self.drain(&mut queues);
        }
    }

    /// Tries in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests waiting in the queue of `class`.
    pub fn depth(&self, class: Priority) -> u32 {
        self.depth[class.index()].load(Ordering::Relaxed)
    }

    /// True when a try could start at once.
    pub fn has_room(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) == 0
            && self.in_flight.load(Ordering::SeqCst) < self.max.load(Ordering::Relaxed)
    }

    /// The fast path: a slot if one is free and nobody is queued.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        if self.waiting.load(Ordering::SeqCst) != 0 {
            return None;
        }
        self.take_slot().then(|| self.permit())
    }

    /// A slot for a request of `class`: at once when free, otherwise after
    /// queuing behind higher classes and earlier requests of its class, for
    /// at most `wait`. Returns how long it waited.
    pub async fn acquire(
        self: &Arc<Self>,
        class: Priority,
        max_queue: u32,
        wait: Duration,
    ) -> Result<(Permit, Duration), QueueError> {
        if let Some(permit) = self.try_acquire() {
            return Ok((permit, Duration::ZERO));
        }
        let started = Instant::now();
        let receiver = {
            let mut queues = self.lock();
            // Hand free slots to earlier waiters first; then, if nobody is
            // left in front, this request takes one itself.
            self.drain(&mut queues);
            if queues.iter().all(VecDeque::is_empty) && self.take_slot() {
                return Ok((self.permit(), Duration::ZERO));
            }
            let queue = &mut queues[class.index()];
            if queue.len() >= max_queue as usize {
                // Waiters that gave up still hold their place until popped:
                // sweep them before calling the queue full.
                let before = queue.len();
                queue.retain(|s| !s.is_closed());
                let swept = u32::try_from(before - queue.len()).unwrap_or(u32::MAX);
                self.waiting.fetch_sub(swept, Ordering::SeqCst);
                if queue.len() >= max_queue as usize {
                    return Err(QueueError::Full(class.as_str()));
                }
            }
            let (sender, receiver) = oneshot::channel();
            queue.push_back(sender);
            self.waiting.fetch_add(1, Ordering::SeqCst);
            // The Dekker half of the queuing side: a slot released between
            // our failed take and the increment above is picked up here.
            self.drain(&mut queues);
            receiver
        };
        let _depth = Depth::enter(&self.depth[class.index()]);
        match tokio::time::timeout(wait, receiver).await {
            Ok(Ok(permit)) => Ok((permit, started.elapsed())),
            // The limiter went away (cannot happen while we hold an Arc to
            // it) or the wait ran out; a slot sent just now is released
            // when the dropped receiver drops it.
            Ok(Err(_)) | Err(_) => Err(QueueError::Timeout(wait)),
        }
    }

    fn permit(self: &Arc<Self>) -> Permit {
        Permit {
            limiter: self.clone(),
            armed: true,
        }
    }

    /// One compare-and-swap: `in_flight += 1` if below the limit.
    fn take_slot(&self) -> bool {
        let max = self.max.load(Ordering::Relaxed);
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(self: &Arc<Self>) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) != 0 {
            let mut queues = self.lock();
            self.drain(&mut queues);
        }
    }

    /// Hands free slots to queued requests, highest class first. Called
    /// with the queues locked.
    fn drain(self: &Arc<Self>, queues: &mut Queues) {
        loop {
            let Some(queue) = queues.iter_mut().find(|q| !q.is_empty()) else {
                return;
            };
            if !self.take_slot() {
                return;
            }
            let Some(sender) = queue.pop_front() else {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                return;
            };
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            if let Err(mut unused) = sender.send(self.permit()) {
                // That waiter gave up: take the slot back by hand (dropping
                // an armed permit here would re-enter the lock).
                unused.armed = false;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        // No code panics while holding it, but a poisoned queue is still a
        // consistent queue.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts a request in its class's queue depth while it waits.
struct Depth<'a>(&'a AtomicU32);

impl<'a> Depth<'a> {
    fn enter(gauge: &'a AtomicU32) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for Depth<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn fast_path_below_the_limit() {
        let l = Arc::new(Limiter::new(2));
        let a = l.try_acquire().unwrap();
        let _b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        assert!(!l.has_room());
        drop(a);
        assert_eq!(l.in_flight(), 1);
        assert!(l.try_acquire().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_requests_go_by_class_then_arrival() {
        let l = Arc::new(Limiter::new(1));
        let held = l.try_acquire().unwrap();
        let order = Arc::new(StdMutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let classes = [
            ("low-1", Priority::Low),
            ("low-2", Priority::Low),
            ("high", Priority::High),
            ("fast", Priority::FastTrack),
        ];
        for (i, (name, class)) in classes.into_iter().enumerate() {
            let (l2, order) = (l.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let (permit, _) = l2.acquire(class, 10, LONG).await.unwrap();
                order.lock().unwrap().push(name);
                drop(permit);
            }));
            // Wait until it is queued, so arrival order is certain.
            while l.waiting.load(Ordering::SeqCst) != i as u32 + 1 {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(l.depth(Priority::Low), 2);
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["fast", "high", "low-1", "low-2"]);
        assert_eq!(l.in_flight(), 0);
        assert_eq!(l.depth(Priority::Low), 0);
    }

    #[tokio::test]
    async fn bounded_queues_and_bounded_waits() {
        let l = Arc::new(Limiter::new(1));
        let _held = l.try_acquire().unwrap();
        let e = l.acquire(Priority::Low, 0, LONG).await.unwrap_err();
        assert_eq!(e, QueueError::Full("low"));
        let e = l
            .acquire(Priority::Low, 1, Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(matches!(e, QueueError::Timeout(_)));
        // The waiter that gave up is swept, so the queue is not full.
        let e = l
            .acquire(Priority::Low, 1, Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(matches!(e, QueueError::Timeout(_)), "{e}");
        assert_eq!(l.depth(Priority::Low), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_slot_is_lost_under_contention() {
        let l = Arc::new(Limiter::new(3));
        let mut tasks = Vec::new();
        for i in 0..64 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move {
                let class = Priority::ALL[i % 3];
                for _ in 0..50 {
                    let (p, _) = l.acquire(class, 1_000, LONG).await.unwrap();
                    assert!(l.in_flight() <= 3);
                    tokio::task::yield_now().await;
                    drop(p);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(l.in_flight(), 0);
        assert_eq!(l.waiting.load(Ordering::SeqCst), 0);
    }
}
