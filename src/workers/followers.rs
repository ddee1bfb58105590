//! Which customers' queued messages wait behind one in work here, so that finishing it
//! wakes its stage at once instead of leaving the next one to the poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::messages::{ClaimedInbound, ClaimedOutbound, ConversationKey};

/// A claimed message's customer.
pub fn inbound_key(m: &ClaimedInbound) -> ConversationKey {
    (m.tenant_id, m.channel, m.message.customer_id.clone())
}

/// A claimed reply's customer (replies go out one at a time per customer).
pub fn outbound_key(o: &ClaimedOutbound) -> Option<ConversationKey> {
    o.customer_id.clone().map(|c| (o.tenant_id, o.channel, c))
}

/// Per customer, for one queue stage (the inbox or the outbox): whether this process has
/// one of their messages in work (claimed or leased, not yet written or sent), and how
/// many of their stored messages it has seen that no one here has taken up yet. A customer's next message cannot be claimed while one
/// before it is pending, so the wake-up its storing sent finds nothing to claim; when
/// the one in work is written, the stage is woken again (`wake`) if such a message
/// waits, instead of leaving it to the poll. Customers not in work here and untouched for
/// `FORGET_AFTER` are forgotten (their messages were taken by another instance, or wait
/// for a burst window) whenever a claim finds nothing or the map grows large.
pub struct Followers {
    map: std::sync::Mutex<HashMap<ConversationKey, Customer>>,
    wake: Arc<Notify>,
}

struct Customer {
    in_work: bool,
    waiting: usize,
    touched: std::time::Instant,
}

impl Default for Customer {
    fn default() -> Self {
        Self {
            in_work: false,
            waiting: 0,
            touched: std::time::Instant::now(),
        }
    }
}

/// How long a customer not in work here is remembered.
const FORGET_AFTER: Duration = Duration::from_secs(10);
/// Customers remembered before the map is swept without waiting for an empty claim.
const SWEEP_ABOVE: usize = 10_000;

fn sweep(map: &mut HashMap<ConversationKey, Customer>) {
    map.retain(|_, c| c.in_work || c.touched.elapsed() < FORGET_AFTER);
}

impl Followers {
    /// For the stage that `wake` wakes.
    pub fn new(wake: Arc<Notify>) -> Self {
        Self {
            map: Default::default(),
            wake,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConversationKey, Customer>> {
        // Counts only: a panic elsewhere while it was held leaves nothing half-done.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks these customers' messages in work until the returned guard is dropped
    /// (`done`).
    pub fn working(self: &Arc<Self>, keys: Vec<ConversationKey>) -> Working {
        Working {
            followers: self.clone(),
            keys,
        }
    }

    /// Messages stored and not leased.
    pub fn arrived(&self, keys: impl IntoIterator<Item = ConversationKey>) {
        let mut map = self.lock();
        if map.len() > SWEEP_ABOVE {
            sweep(&mut map);
        }
        for k in keys {
            let c = map.entry(k).or_default();
            c.waiting += 1;
            c.touched = std::time::Instant::now();
        }
    }

    /// Messages taken up: by a claim (`claimed`: one the map has seen arrive) or leased
    /// as they were stored.
    pub fn taken(&self, keys: impl IntoIterator<Item = ConversationKey>, claimed: bool) {
        let mut map = self.lock();
        for k in keys {
            let c = map.entry(k).or_default();
            c.in_work = true;
            c.touched = std::time::Instant::now();
            if claimed {
                c.waiting = c.waiting.saturating_sub(1);
            }
        }
    }

    /// Messages written or given up: wakes the stage if one of these customers has a
    /// message waiting, claimable now.
    pub fn done<'a>(&self, keys: impl IntoIterator<Item = &'a ConversationKey>) {
        if self.settle(keys) {
            self.wake.notify_one();
        }
    }

    /// As `done`; whether to wake the stage.
    fn settle<'a>(&self, keys: impl IntoIterator<Item = &'a ConversationKey>) -> bool {
        let mut map = self.lock();
        let mut wake = false;
        for k in keys {
            if let Some(c) = map.get_mut(k) {
                c.in_work = false;
                c.touched = std::time::Instant::now();
                wake |= c.waiting > 0;
                if c.waiting == 0 {
                    map.remove(k);
                }
            }
        }
        wake
    }

    /// Notes a claim's messages (one per customer); with none, that nothing was
    /// claimable.
    pub fn claimed(&self, keys: impl IntoIterator<Item = ConversationKey>) {
        let mut keys = keys.into_iter().peekable();
        if keys.peek().is_none() {
            self.nothing_claimable();
        } else {
            self.taken(keys, true);
        }
    }

    /// A claim found nothing: forget the customers long out of work here.
    pub fn nothing_claimable(&self) {
        sweep(&mut self.lock());
    }
}

/// Customers' messages in work: `Followers::done` for them when dropped (written, sent,
/// or given up).
pub struct Working {
    followers: Arc<Followers>,
    keys: Vec<ConversationKey>,
}

impl Working {
    /// Takes `key` out into a guard of its own (a turn that goes on without the batch).
    pub fn split_off(&mut self, key: &ConversationKey) -> Working {
        let keys = match self.keys.iter().position(|k| k == key) {
            Some(i) => vec![self.keys.swap_remove(i)],
            None => Vec::new(),
        };
        Working {
            followers: self.followers.clone(),
            keys,
        }
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        self.followers.done(&self.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, TenantId};

    fn key(customer: &str) -> ConversationKey {
        (
            TenantId(uuid::Uuid::nil()),
            Channel::Whatsapp,
            customer.to_string(),
        )
    }

    #[test]
    fn followers_of_a_leased_message_wake_the_pipeline_one_by_one() {
        let w = Followers::new(Arc::new(Notify::new()));
        let x = key("x");
        // Stored together: the first leased, two after it.
        w.taken([x.clone()], false);
        w.arrived([x.clone(), x.clone()]);
        // A claim in the meantime finds nothing (they wait for the first).
        w.nothing_claimable();
        assert!(w.settle([&x]), "the second is claimable now");
        w.taken([x.clone()], true);
        assert!(w.settle([&x]), "the third is");
        w.taken([x.clone()], true);
        assert!(!w.settle([&x]), "nothing left");
        assert!(w.lock().is_empty());
    }

    #[test]
    fn messages_claimed_as_they_come_wake_nothing_more() {
        let w = Followers::new(Arc::new(Notify::new()));
        let (x, y) = (key("x"), key("y"));
        // Stored and claimed one at a time, as at light load without a lease.
        for _ in 0..3 {
            w.arrived([x.clone(), y.clone()]);
            w.taken([x.clone(), y.clone()], true);
            assert!(!w.settle([&x, &y]));
        }
        assert!(w.lock().is_empty());
        // Stored before the one ahead was claimed: found when that one is written.
        w.arrived([x.clone(), x.clone()]);
        w.taken([x.clone()], true);
        assert!(w.settle([&x]));
    }
}
