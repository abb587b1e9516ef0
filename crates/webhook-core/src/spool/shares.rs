//! Each webhook's share of the spool: the bytes of its pending entries (on disk, or held in
//! memory for `ack: accepted`) may not pass a fraction of the quota, so one webhook whose
//! destination is down (or one flooded by an unauthenticated sender) cannot make every
//! other webhook answer 503.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Pending bytes per webhook, against one cap.
#[derive(Debug)]
pub(crate) struct Shares {
    max: u64,
    held: Mutex<HashMap<Arc<str>, u64>>,
}

impl Shares {
    /// At most `max` bytes per webhook.
    pub(crate) fn new(max: u64) -> Self {
        Self {
            max,
            held: Mutex::new(HashMap::new()),
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<Arc<str>, u64>> {
        match self.held.lock() {
            Ok(held) => held,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Charge `bytes` to `webhook` if its share allows; `Err(held)` when it does not.
    pub(crate) fn try_charge(&self, webhook: &Arc<str>, bytes: u64) -> Result<(), u64> {
        let mut held = self.held();
        let now = held.get(webhook).copied().unwrap_or(0);
        if now + bytes > self.max {
            return Err(now);
        }
        held.insert(Arc::clone(webhook), now + bytes);
        Ok(())
    }

    /// Charge `bytes` to `webhook` whatever its share (recovered or replayed entries).
    pub(crate) fn charge(&self, webhook: &Arc<str>, bytes: u64) {
        *self.held().entry(Arc::clone(webhook)).or_insert(0) += bytes;
    }

    /// Give `bytes` back.
    pub(crate) fn release(&self, webhook: &str, bytes: u64) {
        let mut held = self.held();
        if let Some(now) = held.get_mut(webhook) {
            *now = now.saturating_sub(bytes);
            if *now == 0 {
                held.remove(webhook);
            }
        }
    }
}
