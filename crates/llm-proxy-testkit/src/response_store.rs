//! The Responses API answers the mock produced, kept so that a follow-up naming one in
//! `previous_response_id` continues its conversation, as OpenAI's stored responses do. Each
//! response keeps its own items (the request's input, then its output) and a link to the one it
//! continued; a conversation is read by following the links. Bounded: the oldest responses are
//! forgotten first, so a long-running mock (the bench) does not grow without limit.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// How many responses are remembered; more than any test chains, few enough to bound memory.
const CAPACITY: usize = 1024;

#[derive(Default)]
pub(crate) struct ResponseStore {
    /// The number of the next response (its ids are built from it), from 1.
    next: AtomicU64,
    stored: Mutex<Stored>,
}

#[derive(Default)]
struct Stored {
    /// Ids, oldest first: the eviction order.
    order: VecDeque<String>,
    by_id: HashMap<String, Turn>,
}

/// One stored response.
struct Turn {
    previous: Option<String>,
    /// This request's input items, then the response's output items.
    items: Vec<Value>,
}

impl ResponseStore {
    /// A fresh number for a response: distinct across the mock's life, so ids never collide.
    pub fn next_number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Remembers response `id`, which continued `previous`, with its input and output items.
    pub fn put(&self, id: String, previous: Option<String>, items: Vec<Value>) {
        let Ok(mut stored) = self.stored.lock() else {
            return;
        };
        if stored.order.len() >= CAPACITY
            && let Some(oldest) = stored.order.pop_front()
        {
            stored.by_id.remove(&oldest);
        }
        stored.order.push_back(id.clone());
        stored.by_id.insert(id, Turn { previous, items });
    }

    /// Every item of the conversation that ends with response `id`, oldest first; `None` if the
    /// mock does not know `id` (or has forgotten a response of its chain).
    pub fn conversation(&self, id: &str) -> Option<Vec<Value>> {
        let stored = self.stored.lock().ok()?;
        let mut chain = Vec::new();
        let mut next = Some(id);
        while let Some(id) = next {
            let turn = stored.by_id.get(id)?;
            chain.push(&turn.items);
            next = turn.previous.as_deref();
        }
        Some(chain.into_iter().rev().flatten().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_conversation_follows_its_links_oldest_first() {
        let store = ResponseStore::default();
        assert_eq!((store.next_number(), store.next_number()), (1, 2));
        store.put("r1".into(), None, vec![json!(1), json!(2)]);
        store.put("r2".into(), Some("r1".into()), vec![json!(3)]);
        assert_eq!(store.conversation("r2"), Some(vec![json!(1), json!(2), json!(3)]));
        assert_eq!(store.conversation("r1"), Some(vec![json!(1), json!(2)]));
        assert_eq!(store.conversation("r3"), None);
    }

    #[test]
    fn the_oldest_are_forgotten_first() {
        let store = ResponseStore::default();
        for n in 0..=CAPACITY {
            store.put(format!("r{n}"), None, Vec::new());
        }
        assert_eq!(store.conversation("r0"), None);
        assert!(store.conversation("r1").is_some());
        assert!(store.conversation(&format!("r{CAPACITY}")).is_some());
    }
}
