//! Which identity created each task, so that `tasks/*` answers only to its owner.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The owner of each task id this server handed out, bounded: the oldest ids are forgotten
/// first (a forgotten task then answers like an unknown one, which fails closed).
#[derive(Debug)]
pub(crate) struct TaskOwners {
    inner: Mutex<Owners>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Owners {
    by_id: HashMap<String, (Arc<str>, Arc<str>)>,
    order: VecDeque<String>,
}

impl TaskOwners {
    pub(crate) fn new(capacity: usize) -> Self {
        TaskOwners {
            inner: Mutex::new(Owners::default()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Owners> {
        // A panic elsewhere while holding the lock leaves consistent data: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `identity` created task `id`.
    pub(crate) fn record(&self, id: &str, identity: &crate::Identity) {
        let mut o = self.lock();
        let owner = (
            Arc::from(identity.host()),
            identity.subject_shared().clone(),
        );
        // The first creator keeps a task id: a handler reusing an id cannot hand it over.
        if !o.by_id.contains_key(id) {
            o.by_id.insert(id.to_owned(), owner);
            o.order.push_back(id.to_owned());
        }
        while o.order.len() > self.capacity {
            if let Some(old) = o.order.pop_front() {
                o.by_id.remove(&old);
            }
        }
    }

    /// Whether `identity` created task `id`.
    pub(crate) fn owned_by(&self, id: &str, identity: &crate::Identity) -> bool {
        self.lock().by_id.get(id).is_some_and(|(host, subject)| {
            **host == *identity.host() && **subject == *identity.subject()
        })
    }
}
