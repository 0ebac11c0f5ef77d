//! Which identity opened each MCP session (`Mcp-Session-Id`), so a session answers only to it.
//!
//! The MCP security guidance: servers "MUST NOT use sessions for authentication" and "SHOULD
//! bind session IDs to user-specific information". Every request is authenticated anyway; the
//! binding stops a second authenticated caller from riding a session it learned the id of.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use crate::Identity;

/// The owner of a session: host and subject, as the audit records name callers.
type Owner = (Arc<str>, Arc<str>);

/// Session id -> owner, bounded: past `capacity` the oldest binding is forgotten, and that
/// session then answers 404 like an unknown one (fail closed).
#[derive(Debug)]
pub(crate) struct SessionBindings {
    inner: RwLock<Table>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Table {
    owners: HashMap<Box<str>, Owner>,
    order: VecDeque<Box<str>>,
}

/// What the table says about a session id a request presented.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    /// Opened by this caller.
    Owner,
    /// Opened by someone else, or unknown: both read as "no such session".
    NotYours,
}

impl SessionBindings {
    pub(crate) fn new(capacity: usize) -> Self {
        SessionBindings {
            inner: RwLock::new(Table::default()),
            capacity,
        }
    }

    /// Records that `identity` opened session `id`. The first owner keeps an id.
    pub(crate) fn bind(&self, id: &str, identity: &Identity) {
        let mut t = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.owners.contains_key(id) {
            return;
        }
        let owner = (
            Arc::from(identity.host()),
            identity.subject_shared().clone(),
        );
        t.owners.insert(id.into(), owner);
        t.order.push_back(id.into());
        while t.order.len() > self.capacity {
            if let Some(old) = t.order.pop_front() {
                t.owners.remove(&old);
            }
        }
    }

    /// Whether `identity` opened session `id`.
    pub(crate) fn check(&self, id: &str, identity: &Identity) -> Binding {
        let t = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match t.owners.get(id) {
            Some((host, subject))
                if **host == *identity.host() && **subject == *identity.subject() =>
            {
                Binding::Owner
            }
            _ => Binding::NotYours,
        }
    }

    /// Forgets session `id` (the owner deleted it).
    pub(crate) fn unbind(&self, id: &str) {
        let mut t = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.owners.remove(id).is_some() {
            t.order.retain(|k| &**k != id);
        }
    }

    /// How many sessions are bound.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .owners
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_the_opener_and_bounded() {
        let t = SessionBindings::new(2);
        let a = Identity::new("a");
        let b = Identity::new("b");
        t.bind("s1", &a);
        t.bind("s1", &b);
        assert_eq!(t.check("s1", &a), Binding::Owner);
        assert_eq!(t.check("s1", &b), Binding::NotYours);
        assert_eq!(t.check("nope", &a), Binding::NotYours);
        t.bind("s2", &a);
        t.bind("s3", &a);
        assert_eq!(t.len(), 2);
        assert_eq!(t.check("s1", &a), Binding::NotYours);
        t.unbind("s2");
        assert_eq!(t.check("s2", &a), Binding::NotYours);
        assert_eq!(t.len(), 1);
    }
}
