use std::collections::HashMap;
use std::sync::Mutex;

use crate::time::Millis;

/// A small per-process cache whose entries expire, so a warm Lambda or the local server picks
/// up edited products and rules within `ttl` without a read per message.
pub struct TtlCache<V> {
    ttl: Millis,
    entries: Mutex<HashMap<String, (Millis, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Millis) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &str, now: Millis) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(stored, _)| now - stored < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: String, value: V, now: Millis) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(key, (now, value));
    }

    pub fn invalidate(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = TtlCache::new(100);
        cache.insert("a".into(), 1, 1_000);
        assert_eq!(cache.get("a", 1_099), Some(1));
        assert_eq!(cache.get("a", 1_100), None);
        cache.insert("a".into(), 2, 1_100);
        cache.invalidate("a");
        assert_eq!(cache.get("a", 1_100), None);
    }
}
