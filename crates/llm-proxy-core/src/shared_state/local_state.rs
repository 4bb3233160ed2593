//! [`LocalState`]: shared state for a single instance, kept in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{DeploymentHealth, LocalHealth, SharedState};
use crate::config::BreakerConfig;

/// In-process [`SharedState`]. Outlives routing tables: the server keeps one for its lifetime, so
/// a deployment's health carries over when the config is reloaded.
#[derive(Default)]
pub struct LocalState {
    /// Taken only while a routing table is built; requests use the `Arc`s handed out here.
    healths: Mutex<HashMap<String, Arc<LocalHealth>>>,
}

impl LocalState {
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(test)]
    pub(crate) fn lock_for_test(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LocalHealth>>> {
        self.healths.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SharedState for LocalState {
    fn deployment_health(&self, key: &str, breaker: BreakerConfig) -> Arc<dyn DeploymentHealth> {
        // A panic elsewhere while holding the lock cannot leave the map half-written (insert is
        // the only write), so a poisoned lock is safe to use.
        let mut healths = self.healths.lock().unwrap_or_else(PoisonError::into_inner);
        match healths.get(key) {
            Some(h) => {
                h.reconfigure(breaker);
                Arc::clone(h) as Arc<dyn DeploymentHealth>
            }
            None => {
                let h = Arc::new(LocalHealth::new(breaker));
                healths.insert(key.to_string(), Arc::clone(&h));
                h
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::UnixMillis;
    use crate::shared_state::BreakerState;

    #[test]
    fn the_same_key_gets_the_same_health_across_builds() {
        let state = LocalState::new();
        let breaker = BreakerConfig::default();
        let a = state.deployment_health("openai/gpt-4o", breaker);
        a.record_check(UnixMillis::from_millis(1), false);
        let again = state.deployment_health("openai/gpt-4o", breaker);
        assert!(Arc::ptr_eq(&a, &again));
        let other = state.deployment_health("openai/gpt-4o-mini", breaker);
        assert!(!Arc::ptr_eq(&a, &other));
        // A reload with another breaker config keeps the breaker's state and applies the new
        // cooldown.
        let changed = BreakerConfig { cooldown: Duration::from_secs(1), ..breaker };
        let reloaded = state.deployment_health("openai/gpt-4o", changed);
        assert!(Arc::ptr_eq(&a, &reloaded));
        assert_eq!(reloaded.snapshot(UnixMillis::from_millis(2)).breaker, BreakerState::Open);
        assert!(reloaded.available(UnixMillis::from_millis(1_001)));
    }
}
