//! The prices the gateway charges, in layers: the registry (bundled, or fetched by the pricing
//! refresh), then the overrides stored in the database (edited through `PUT /api/models/overrides`),
//! then the operator's overrides file — the config file beats the database, as everywhere in the
//! configuration's precedence. Any layer changing recomposes the table and swaps it in whole.

use std::sync::{Arc, Mutex};

use llm_proxy_core::UnixMillis;
use llm_proxy_core::pricing::PriceTable;

use crate::accounting::Accounting;

/// The setting that holds the stored overrides (JSON in the overrides file's shape).
pub const SETTING: &str = "price_overrides";

pub struct PriceLayers {
    state: Mutex<Layers>,
}

struct Layers {
    registry: Arc<PriceTable>,
    /// The overrides file's text, as read at start or at the last refresh.
    file: Option<String>,
    stored: Option<String>,
    /// When the stored overrides were put, as last read (other instances' changes are polled).
    stored_at: Option<UnixMillis>,
}

impl PriceLayers {
    pub fn new(registry: PriceTable, file: Option<String>) -> Self {
        Self { state: Mutex::new(Layers { registry: Arc::new(registry), file, stored: None, stored_at: None }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Layers> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The table with `stored` as the database layer: `Err` says why `stored` (or the file) does
    /// not apply.
    pub fn compose_with(&self, stored: Option<&str>) -> Result<PriceTable, String> {
        let (registry, file) = {
            let l = self.lock();
            (l.registry.clone(), l.file.clone())
        };
        let mut table = match stored {
            Some(text) => registry.with_overrides(text)?,
            None => (*registry).clone(),
        };
        if let Some(file) = &file {
            table = table.with_overrides(file)?;
        }
        Ok(table)
    }

    /// Whether an overrides file is configured (it wins over the stored overrides).
    pub fn has_file(&self) -> bool {
        self.lock().file.is_some()
    }

    /// The stored overrides as last applied, and when they were put.
    pub fn stored(&self) -> (Option<String>, Option<UnixMillis>) {
        let l = self.lock();
        (l.stored.clone(), l.stored_at)
    }

    /// Applies new stored overrides (already checked with `compose_with`) and swaps the table in.
    pub fn set_stored(&self, stored: Option<String>, at: Option<UnixMillis>, accounting: &Accounting) {
        match self.compose_with(stored.as_deref()) {
            Ok(table) => {
                {
                    let mut l = self.lock();
                    l.stored = stored;
                    l.stored_at = at;
                }
                accounting.prices.store(Arc::new(table));
            }
            Err(e) => {
                tracing::warn!(error = %e, "the stored price overrides do not apply; keeping the current prices");
                self.lock().stored_at = at;
            }
        }
    }

    /// A refreshed registry, and the overrides file as it reads now: the stored and file
    /// overrides go on top again. `Err` keeps the current table.
    pub fn set_registry(
        &self,
        registry: PriceTable,
        file: Option<String>,
        accounting: &Accounting,
    ) -> Result<usize, String> {
        let (stored, previous) = {
            let mut l = self.lock();
            let previous =
                (std::mem::replace(&mut l.registry, Arc::new(registry)), std::mem::replace(&mut l.file, file));
            (l.stored.clone(), previous)
        };
        match self.compose_with(stored.as_deref()) {
            Ok(table) => {
                let n = table.len();
                accounting.prices.store(Arc::new(table));
                Ok(n)
            }
            Err(e) => {
                let mut l = self.lock();
                (l.registry, l.file) = previous;
                Err(e)
            }
        }
    }
}

/// Reads the stored overrides at start, then every second, applying them when another instance
/// (or this one) has put new ones.
pub async fn poll(state: Arc<crate::app::Shared>, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state.store.setting(SETTING).await {
            Ok(Some((text, at))) if state.price_layers.stored().1 != Some(at) => {
                state.price_layers.set_stored(Some(text), Some(at), &state.accounting);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot read the stored price overrides; keeping the current prices"),
        }
    }
}
