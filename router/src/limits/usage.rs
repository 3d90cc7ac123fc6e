//! Usage counted per key and model since the server started: requests, prompt and completion
//! tokens.

use std::collections::BTreeMap;

use serde::Serialize;

/// One model's usage by one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ModelUsage {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Every key's usage, by model.
#[derive(Debug, Default)]
pub struct UsageBook {
    by_key: BTreeMap<String, BTreeMap<String, ModelUsage>>,
}

impl UsageBook {
    pub fn record(&mut self, key: &str, model: &str, prompt: u64, completion: u64) {
        let u = self
            .by_key
            .entry(key.to_string())
            .or_default()
            .entry(model.to_string())
            .or_default();
        u.requests += 1;
        u.prompt_tokens += prompt;
        u.completion_tokens += completion;
    }

    /// `key`'s usage by model.
    pub fn of(&self, key: &str) -> BTreeMap<String, ModelUsage> {
        self.by_key.get(key).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up_per_key_and_model() {
        let mut b = UsageBook::default();
        b.record("k", "m", 3, 4);
        b.record("k", "m", 1, 1);
        b.record("k", "n", 2, 0);
        let u = b.of("k");
        assert_eq!(
            u["m"],
            ModelUsage {
                requests: 2,
                prompt_tokens: 4,
                completion_tokens: 5
            }
        );
        assert_eq!(u["n"].requests, 1);
        assert!(b.of("other").is_empty());
    }
}
