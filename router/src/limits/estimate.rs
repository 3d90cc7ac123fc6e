//! What a request will cost before it runs: its `model` and a token estimate (the prompt's
//! characters / 4, plus the completion it may produce: `max_completion_tokens`, `max_tokens` or
//! Ollama's `options.num_predict`, times `n`), read from the JSON body of OpenAI's and
//! Ollama's inference routes. The estimate is reserved at admission and corrected with the real
//! usage when the answer ends.

use serde_json::Value;

/// Completion tokens reserved when the request names no maximum.
pub const DEFAULT_COMPLETION_RESERVE: u64 = 256;

/// The model and token estimate of a request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Estimate {
    pub model: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Whether the route generates text (embeddings reserve no completion).
    pub generates: bool,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

fn chars(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.chars().count() as u64,
        Value::Array(a) => a.iter().map(chars).sum(),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "content" | "text" | "input" | "prompt"))
            .map(|(_, v)| chars(v))
            .sum(),
        Value::Number(_) => 1,
        _ => 0,
    }
}

fn uint(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

/// The estimate for a body sent to `path` (`None` when the body is not a JSON object).
pub fn estimate(path: &str, body: &[u8]) -> Option<Estimate> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object()?;
    let model = o
        .get("model")
        .or_else(|| o.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let prompt_chars: u64 = [
        "messages",
        "prompt",
        "input",
        "system",
        "suffix",
        "instructions",
    ]
    .iter()
    .filter_map(|k| o.get(*k))
    .map(chars)
    .sum();
    let embeds = path.ends_with("/embeddings") || path.ends_with("/embed");
    let generates = !embeds
        && (path.ends_with("/completions")
            || path.ends_with("/chat")
            || path.ends_with("/generate")
            || path.ends_with("/responses"));
    let n = uint(o.get("n")).unwrap_or(1).clamp(1, 128);
    let completion = if generates {
        let max = uint(o.get("max_completion_tokens"))
            .or_else(|| uint(o.get("max_tokens")))
            .or_else(|| uint(o.get("max_output_tokens")))
            .or_else(|| uint(o.get("options").and_then(|x| x.get("num_predict"))))
            .unwrap_or(DEFAULT_COMPLETION_RESERVE);
        max.min(1 << 20).saturating_mul(n)
    } else {
        0
    };
    Some(Estimate {
        model,
        prompt_tokens: prompt_chars / 4 + 1,
        completion_tokens: completion,
        generates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_read_the_prompt_and_the_maximum() {
        let e = estimate(
            "/v1/chat/completions",
            br#"{"model":"m","messages":[{"role":"user","content":"12345678"}],"max_tokens":10,"n":2}"#,
        )
        .unwrap();
        assert_eq!(e.model.as_deref(), Some("m"));
        assert_eq!((e.prompt_tokens, e.completion_tokens), (3, 20));
        let e = estimate(
            "/api/generate",
            br#"{"model":"m","prompt":"abcd","options":{"num_predict":5}}"#,
        )
        .unwrap();
        assert_eq!(e.total(), 2 + 5);
        let e = estimate(
            "/v1/embeddings",
            br#"{"model":"e","input":["abcd","efgh"]}"#,
        )
        .unwrap();
        assert_eq!((e.prompt_tokens, e.completion_tokens), (3, 0));
        let e = estimate("/v1/completions", br#"{"model":"m","prompt":"x"}"#).unwrap();
        assert_eq!(e.completion_tokens, DEFAULT_COMPLETION_RESERVE);
        assert!(estimate("/v1/completions", b"not json").is_none());
    }
}
