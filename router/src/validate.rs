//! Validation of wire requests into the engines' types. Every error names the field at fault.

use nfai_models::chat_template::ChatMessage;

use crate::backend::SamplingRequest;
use crate::error::ApiError;
use crate::openai::chat::{ChatMessageIn, MessageContent};
use crate::openai::{SamplingFields, StopSpec};

/// OpenAI accepts at most four stop sequences.
pub const MAX_STOPS: usize = 4;

fn in_range(param: &str, v: f32, lo: f32, hi: f32) -> Result<f32, ApiError> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(v)
    } else {
        Err(ApiError::invalid(
            param,
            format!("'{param}' must be between {lo} and {hi}, got {v}."),
        ))
    }
}

fn opt_range(param: &str, v: Option<f32>, lo: f32, hi: f32) -> Result<Option<f32>, ApiError> {
    v.map(|v| in_range(param, v, lo, hi)).transpose()
}

/// Sampling fields and stop strings, range-checked; the backend applies its model's defaults.
pub fn sampling(f: &SamplingFields) -> Result<(SamplingRequest, Vec<String>), ApiError> {
    if let Some(n) = f.n
        && n != 1
    {
        return Err(ApiError::unsupported(
            "n",
            format!("Only n=1 is supported, got n={n}."),
        ));
    }
    if f.logit_bias.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(ApiError::unsupported(
            "logit_bias",
            "logit_bias is not supported.",
        ));
    }
    if let Some(p) = f.top_p
        && !(p.is_finite() && p > 0.0 && p <= 1.0)
    {
        return Err(ApiError::invalid(
            "top_p",
            format!("'top_p' must be in (0, 1], got {p}."),
        ));
    }
    let top_k = match f.top_k {
        Some(k) if k < 0 => {
            return Err(ApiError::invalid(
                "top_k",
                format!("'top_k' must be >= 0, got {k}."),
            ));
        }
        Some(k) => Some(usize::try_from(k).unwrap_or(usize::MAX)),
        None => None,
    };
    let params = SamplingRequest {
        temperature: opt_range("temperature", f.temperature, 0.0, 2.0)?,
        top_p: f.top_p,
        top_k,
        seed: f.seed.map(|s| s as u64),
        repetition_penalty: opt_range("repetition_penalty", f.repetition_penalty, 0.01, 10.0)?,
        presence_penalty: opt_range("presence_penalty", f.presence_penalty, -2.0, 2.0)?,
        frequency_penalty: opt_range("frequency_penalty", f.frequency_penalty, -2.0, 2.0)?,
    };
    let stops = match &f.stop {
        None => Vec::new(),
        Some(StopSpec::One(s)) => vec![s.clone()],
        Some(StopSpec::Many(v)) => v.clone(),
    };
    if stops.len() > MAX_STOPS {
        return Err(ApiError::invalid(
            "stop",
            format!(
                "'stop' may hold at most {MAX_STOPS} sequences, got {}.",
                stops.len()
            ),
        ));
    }
    if stops.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "stop",
            "'stop' sequences must not be empty.",
        ));
    }
    Ok((params, stops))
}

/// Chat messages as the template renders them.
pub fn chat_messages(messages: &[ChatMessageIn]) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "'messages' must hold at least one message.",
        ));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => {
                    return Err(ApiError::invalid(
                        format!("messages[{i}].role"),
                        format!("Unsupported role '{other}'; use system, developer, user or assistant."),
                    ));
                }
            };
            let content = match &m.content {
                None => String::new(),
                Some(MessageContent::Text(t)) => t.clone(),
                Some(MessageContent::Parts(parts)) => {
                    let mut text = String::new();
                    for (j, p) in parts.iter().enumerate() {
                        match (p.kind.as_str(), &p.text) {
                            ("text", Some(t)) => text.push_str(t),
                            (kind, _) => {
                                return Err(ApiError::unsupported(
                                    &format!("messages[{i}].content[{j}].type"),
                                    format!("Content parts of type '{kind}' are not supported; only 'text'."),
                                ));
                            }
                        }
                    }
                    text
                }
            };
            Ok(ChatMessage { role: role.to_string(), content })
        })
        .collect()
}

/// Tokens to generate: the request's limit, else the model default, else what the context
/// leaves; refuses prompts that leave no room.
pub fn max_new_tokens(
    requested: Option<usize>,
    param: &str,
    prompt_len: usize,
    context: usize,
    default: Option<usize>,
    prompt_param: &str,
) -> Result<usize, ApiError> {
    if prompt_len >= context {
        return Err(ApiError::context_length_exceeded(
            prompt_param,
            format!(
                "This model's maximum context length is {context} tokens. However, your prompt has {prompt_len} tokens. Please shorten it."
            ),
        ));
    }
    let room = context - prompt_len;
    match requested {
        Some(n) => {
            if n > room {
                Err(ApiError::context_length_exceeded(
                    param,
                    format!(
                        "This model's maximum context length is {context} tokens. However, you requested {} tokens ({prompt_len} in the prompt, {n} for the completion). Please reduce the prompt or '{param}'.",
                        prompt_len.saturating_add(n)
                    ),
                ))
            } else {
                Ok(n)
            }
        }
        None => Ok(default.map_or(room, |d| d.min(room))),
    }
}

/// The `keep_alive` extension field.
pub fn keep_alive(
    v: Option<&serde_json::Value>,
) -> Result<Option<crate::backend::KeepAlive>, ApiError> {
    v.map(|v| {
        crate::backend::KeepAlive::parse_json(v).map_err(|m| ApiError::invalid("keep_alive", m))
    })
    .transpose()
}

/// A completion limit from the wire: at least 1.
pub fn max_tokens(v: Option<i64>, param: &str) -> Result<Option<usize>, ApiError> {
    match v {
        Some(n) if n < 1 => Err(ApiError::invalid(
            param,
            format!("'{param}' must be at least 1, got {n}."),
        )),
        Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        None => Ok(None),
    }
}

/// Client-sent token ids: a non-empty list of non-negative ids.
pub fn token_ids(ids: &[i64], param: &str) -> Result<Vec<u32>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid(
            param,
            format!("'{param}' must not be an empty token list."),
        ));
    }
    ids.iter()
        .map(|&id| {
            u32::try_from(id).map_err(|_| {
                ApiError::invalid(param, format!("Token id {id} is not a valid token id."))
            })
        })
        .collect()
}

/// Token ids checked against a model's vocabulary.
pub fn in_vocab(ids: Vec<u32>, vocab: usize, param: &str) -> Result<Vec<u32>, ApiError> {
    match ids.iter().find(|&&t| t as usize >= vocab) {
        Some(bad) => Err(ApiError::invalid(
            param,
            format!("Token id {bad} is outside the vocabulary (0..{vocab})."),
        )),
        None => Ok(ids),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_field() {
        let f = SamplingFields {
            temperature: Some(3.0),
            ..Default::default()
        };
        assert_eq!(
            sampling(&f).unwrap_err().param.as_deref(),
            Some("temperature")
        );
        let f = SamplingFields {
            n: Some(2),
            ..Default::default()
        };
        assert_eq!(sampling(&f).unwrap_err().param.as_deref(), Some("n"));
        let f = SamplingFields {
            top_p: Some(0.0),
            ..Default::default()
        };
        assert_eq!(sampling(&f).unwrap_err().param.as_deref(), Some("top_p"));
        let f = SamplingFields {
            stop: Some(StopSpec::Many(vec!["a".into(); 5])),
            ..Default::default()
        };
        assert_eq!(sampling(&f).unwrap_err().param.as_deref(), Some("stop"));
    }

    #[test]
    fn defaults_fill_gaps_and_request_wins() {
        let d = crate::catalog::SamplingDefaults {
            temperature: Some(0.7),
            top_k: Some(40),
            ..Default::default()
        };
        let (p, _) = sampling(&SamplingFields::default()).unwrap();
        let p = p.resolve(&d);
        assert_eq!((p.temperature, p.top_k), (0.7, 40));
        let f = SamplingFields {
            temperature: Some(0.0),
            ..Default::default()
        };
        assert_eq!(sampling(&f).unwrap().0.resolve(&d).temperature, 0.0);
    }

    #[test]
    fn context_checks() {
        assert_eq!(
            max_new_tokens(None, "max_tokens", 10, 100, None, "prompt").unwrap(),
            90
        );
        assert_eq!(
            max_new_tokens(None, "max_tokens", 10, 100, Some(16), "prompt").unwrap(),
            16
        );
        let e = max_new_tokens(Some(95), "max_tokens", 10, 100, None, "prompt").unwrap_err();
        assert_eq!(e.code, Some("context_length_exceeded"));
        let e = max_new_tokens(None, "max_tokens", 100, 100, None, "messages").unwrap_err();
        assert_eq!(
            (e.code, e.param.as_deref()),
            (Some("context_length_exceeded"), Some("messages"))
        );
        assert!(max_tokens(Some(0), "max_tokens").is_err());
        assert_eq!(max_tokens(Some(5), "max_tokens").unwrap(), Some(5));
    }

    #[test]
    fn token_ids_are_checked() {
        assert_eq!(token_ids(&[1, 2], "input").unwrap(), vec![1, 2]);
        assert!(token_ids(&[-1], "input").is_err());
        assert!(token_ids(&[], "input").is_err());
        assert!(in_vocab(vec![10], 10, "input").is_err());
        assert_eq!(in_vocab(vec![9], 10, "input").unwrap(), vec![9]);
    }
}
