//! Validation of wire requests into the engines' types. Every error names the field at fault.

use nfai_inference::SamplingParams;
use nfai_models::chat_template::ChatMessage;

use crate::catalog::SamplingDefaults;
use crate::error::ApiError;
use crate::openai::chat::{ChatMessageIn, MessageContent};
use crate::openai::{SamplingFields, StopSpec};

/// OpenAI accepts at most four stop sequences.
pub const MAX_STOPS: usize = 4;

fn in_range(param: &str, v: f32, lo: f32, hi: f32) -> Result<f32, ApiError> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(v)
    } else {
        Err(ApiError::invalid(param, format!("'{param}' must be between {lo} and {hi}, got {v}.")))
    }
}

/// Sampling parameters and stop strings, with the model's defaults where the request is silent.
pub fn sampling(
    f: &SamplingFields,
    defaults: &SamplingDefaults,
) -> Result<(SamplingParams, Vec<String>), ApiError> {
    if let Some(n) = f.n {
        if n != 1 {
            return Err(ApiError::unsupported("n", format!("Only n=1 is supported, got n={n}.")));
        }
    }
    if f.logit_bias.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(ApiError::unsupported("logit_bias", "logit_bias is not supported."));
    }
    let temperature = f.temperature.or(defaults.temperature).unwrap_or(1.0);
    let top_p = f.top_p.or(defaults.top_p).unwrap_or(1.0);
    let top_k = match f.top_k {
        Some(k) if k < 0 => {
            return Err(ApiError::invalid("top_k", format!("'top_k' must be >= 0, got {k}.")));
        }
        Some(k) => usize::try_from(k).unwrap_or(usize::MAX),
        None => defaults.top_k.unwrap_or(0),
    };
    let repetition_penalty = f.repetition_penalty.or(defaults.repetition_penalty).unwrap_or(1.0);
    let params = SamplingParams {
        temperature: in_range("temperature", temperature, 0.0, 2.0)?,
        top_p: in_range("top_p", top_p, f32::MIN_POSITIVE, 1.0)
            .map_err(|_| ApiError::invalid("top_p", format!("'top_p' must be in (0, 1], got {top_p}.")))?,
        top_k,
        seed: f.seed.map(|s| s as u64),
        repetition_penalty: in_range("repetition_penalty", repetition_penalty, 0.01, 10.0)?,
        presence_penalty: in_range("presence_penalty", f.presence_penalty.unwrap_or(0.0), -2.0, 2.0)?,
        frequency_penalty: in_range("frequency_penalty", f.frequency_penalty.unwrap_or(0.0), -2.0, 2.0)?,
    };
    let stops = match &f.stop {
        None => Vec::new(),
        Some(StopSpec::One(s)) => vec![s.clone()],
        Some(StopSpec::Many(v)) => v.clone(),
    };
    if stops.len() > MAX_STOPS {
        return Err(ApiError::invalid(
            "stop",
            format!("'stop' may hold at most {MAX_STOPS} sequences, got {}.", stops.len()),
        ));
    }
    if stops.iter().any(String::is_empty) {
        return Err(ApiError::invalid("stop", "'stop' sequences must not be empty."));
    }
    Ok((params, stops))
}

/// Chat messages as the template renders them.
pub fn chat_messages(messages: &[ChatMessageIn]) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid("messages", "'messages' must hold at least one message."));
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
    requested: Option<i64>,
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
        Some(n) if n < 1 => {
            Err(ApiError::invalid(param, format!("'{param}' must be at least 1, got {n}.")))
        }
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
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

/// Client-sent token ids, checked against the vocabulary.
pub fn token_ids(ids: &[i64], vocab: usize, param: &str) -> Result<Vec<u32>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid(param, format!("'{param}' must not be an empty token list.")));
    }
    ids.iter()
        .map(|&id| {
            u32::try_from(id).ok().filter(|&t| (t as usize) < vocab).ok_or_else(|| {
                ApiError::invalid(param, format!("Token id {id} is outside the vocabulary (0..{vocab})."))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_field() {
        let f = SamplingFields { temperature: Some(3.0), ..Default::default() };
        assert_eq!(sampling(&f, &Default::default()).unwrap_err().param.as_deref(), Some("temperature"));
        let f = SamplingFields { n: Some(2), ..Default::default() };
        assert_eq!(sampling(&f, &Default::default()).unwrap_err().param.as_deref(), Some("n"));
        let f = SamplingFields { top_p: Some(0.0), ..Default::default() };
        assert_eq!(sampling(&f, &Default::default()).unwrap_err().param.as_deref(), Some("top_p"));
        let f = SamplingFields {
            stop: Some(StopSpec::Many(vec!["a".into(); 5])),
            ..Default::default()
        };
        assert_eq!(sampling(&f, &Default::default()).unwrap_err().param.as_deref(), Some("stop"));
    }

    #[test]
    fn defaults_fill_gaps_and_request_wins() {
        let d = SamplingDefaults { temperature: Some(0.7), top_k: Some(40), ..Default::default() };
        let (p, _) = sampling(&SamplingFields::default(), &d).unwrap();
        assert_eq!((p.temperature, p.top_k), (0.7, 40));
        let f = SamplingFields { temperature: Some(0.0), ..Default::default() };
        assert_eq!(sampling(&f, &d).unwrap().0.temperature, 0.0);
    }

    #[test]
    fn context_checks() {
        assert_eq!(max_new_tokens(None, "max_tokens", 10, 100, None, "prompt").unwrap(), 90);
        assert_eq!(max_new_tokens(None, "max_tokens", 10, 100, Some(16), "prompt").unwrap(), 16);
        let e = max_new_tokens(Some(95), "max_tokens", 10, 100, None, "prompt").unwrap_err();
        assert_eq!(e.code, Some("context_length_exceeded"));
        let e = max_new_tokens(None, "max_tokens", 100, 100, None, "messages").unwrap_err();
        assert_eq!((e.code, e.param.as_deref()), (Some("context_length_exceeded"), Some("messages")));
        assert!(max_new_tokens(Some(0), "max_tokens", 1, 100, None, "prompt").is_err());
    }

    #[test]
    fn token_ids_are_checked() {
        assert_eq!(token_ids(&[1, 2], 10, "input").unwrap(), vec![1, 2]);
        assert!(token_ids(&[10], 10, "input").is_err());
        assert!(token_ids(&[-1], 10, "input").is_err());
        assert!(token_ids(&[], 10, "input").is_err());
    }
}
