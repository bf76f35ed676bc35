//! Which connections of `serve` may be closed to admit a new one when `max_connections` is
//! reached, as nginx reuses its idle connections: a connection waiting for a request with
//! nothing of it received yet. Keep-alive connections (at least one answer sent) go first,
//! oldest first; then connections that have sent nothing since they were accepted, oldest
//! first, once silent for [`FRESH_GRACE`] (a browser's speculative connection or an idle
//! attacker, not a client whose first bytes are still on their way). A connection that
//! receives a request at the moment it is chosen serves it and wakes the accept loop, which
//! then chooses another.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a connection that never sent a byte is left alone before it may be closed.
pub const FRESH_GRACE: Duration = Duration::from_secs(1);

/// The connections waiting idle, by the order they started waiting.
#[derive(Default)]
pub struct IdleSet {
    next: AtomicU64,
    lists: Mutex<Lists>,
    /// Connections asked to close that have not yet closed or escaped (changed with `lists`
    /// locked, so a guard dropped as it is chosen is counted exactly once).
    closing: AtomicUsize,
}

#[derive(Default)]
struct Lists {
    /// Keep-alive connections between requests.
    kept: BTreeMap<u64, Arc<Closing>>,
    /// Connections that have sent nothing yet, with when they started waiting.
    fresh: BTreeMap<u64, (Instant, Arc<Closing>)>,
}

/// The request to close one waiting connection.
#[derive(Default)]
struct Closing {
    asked: AtomicBool,
    wake: Notify,
}

/// What [`IdleSet::close_oldest`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// One connection was asked to close; its slot frees when it has.
    One,
    /// None may be closed yet; the oldest silent new connection may be at this instant.
    NotBefore(Instant),
    /// No connection is idle.
    Nothing,
}

impl IdleSet {
    fn lists(&self) -> std::sync::MutexGuard<'_, Lists> {
        self.lists.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection that starts waiting for a request (`kept_alive`: it has been
    /// answered before); it stays registered while the returned guard lives.
    pub fn enter(&self, kept_alive: bool) -> Idle<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let closing = Arc::new(Closing::default());
        let mut lists = self.lists();
        if kept_alive {
            lists.kept.insert(id, closing.clone());
        } else {
            lists.fresh.insert(id, (Instant::now(), closing.clone()));
        }
        Idle { set: self, id, kept_alive, closing }
    }

    /// Asks the connection idle longest to close: keep-alive ones first, then ones silent
    /// since accepted for at least [`FRESH_GRACE`].
    pub fn close_oldest(&self, now: Instant) -> Closed {
        let mut lists = self.lists();
        let chosen = match lists.kept.pop_first() {
            Some((_, c)) => c,
            None => match lists.fresh.first_key_value() {
                Some((_, (since, _))) if now.saturating_duration_since(*since) < FRESH_GRACE => {
                    return Closed::NotBefore(*since + FRESH_GRACE);
                }
                Some(_) => match lists.fresh.pop_first() {
                    Some((_, (_, c))) => c,
                    None => return Closed::Nothing,
                },
                None => return Closed::Nothing,
            },
        };
        chosen.asked.store(true, Ordering::Release);
        self.closing.fetch_add(1, Ordering::AcqRel);
        drop(lists);
        chosen.wake.notify_one();
        Closed::One
    }

    /// How many connections were asked to close and have not yet let go (the accept loop asks
    /// for no more meanwhile, so one waiting client closes one idle connection).
    pub fn closing(&self) -> usize {
        self.closing.load(Ordering::Acquire)
    }

    /// How many connections are waiting (both kinds).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        let lists = self.lists();
        lists.kept.len() + lists.fresh.len()
    }
}

/// One connection's registration as idle; dropped when its request starts arriving.
pub struct Idle<'a> {
    set: &'a IdleSet,
    id: u64,
    kept_alive: bool,
    closing: Arc<Closing>,
}

impl Idle<'_> {
    /// Completes when the server asks this connection to close.
    pub async fn asked_to_close(&self) {
        self.closing.wake.notified().await;
    }

    /// Whether the server asked this connection to close (it may have been chosen just as its
    /// request arrived).
    pub fn was_asked(&self) -> bool {
        self.closing.asked.load(Ordering::Acquire)
    }
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        let mut lists = self.set.lists();
        if self.kept_alive {
            lists.kept.remove(&self.id);
        } else {
            lists.fresh.remove(&self.id);
        }
        if self.closing.asked.load(Ordering::Acquire) {
            self.set.closing.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_first_oldest_first_fresh_after_grace() {
        let set = IdleSet::default();
        let now = Instant::now();
        let fresh = set.enter(false);
        let old = set.enter(true);
        let young = set.enter(true);
        assert_eq!(set.len(), 3);
        assert_eq!(set.close_oldest(now), Closed::One);
        assert!(old.was_asked() && !young.was_asked() && !fresh.was_asked());
        assert_eq!(set.closing(), 1);
        drop(old);
        assert_eq!(set.closing(), 0);
        assert_eq!(set.close_oldest(now), Closed::One);
        assert!(young.was_asked());
        // Only the fresh one is left, silent for less than the grace.
        assert!(matches!(set.close_oldest(now), Closed::NotBefore(_)));
        assert!(!fresh.was_asked());
        assert_eq!(set.close_oldest(now + FRESH_GRACE + Duration::from_secs(1)), Closed::One);
        assert!(fresh.was_asked());
        assert_eq!(set.close_oldest(now), Closed::Nothing);
        assert_eq!(set.closing(), 2);
        drop((young, fresh));
        assert_eq!((set.len(), set.closing()), (0, 0));
        // A guard dropped before being chosen leaves nothing behind.
        drop(set.enter(true));
        assert_eq!(set.close_oldest(now), Closed::Nothing);
    }
}
