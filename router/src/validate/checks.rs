//! The checks that turn protocol-neutral inputs into validated request values. Every error
//! names the field at fault.

use super::request::{ChatMessage, FieldError, KeepAlive, Prompt, SamplingRequest};

/// OpenAI accepts at most four stop sequences.
pub const MAX_STOPS: usize = 4;

/// OpenAI's limit on prompts (and embedding inputs) per request.
pub const MAX_PROMPTS: usize = 2048;

/// Sampling fields in any protocol's spelling, before their ranges are checked.
#[derive(Debug, Clone, Default)]
pub struct SamplingInput {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i64>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repetition_penalty: Option<f32>,
    /// The repetition penalty's window: -1 for the whole sequence, 0 to turn it off.
    pub repeat_last_n: Option<i64>,
    pub stop: Vec<String>,
    /// Choices asked for (`n`).
    pub n: Option<i64>,
    /// A non-empty `logit_bias` was sent.
    pub logit_bias: bool,
}

/// One chat message as a protocol sent it.
#[derive(Debug, Clone)]
pub struct MessageInput {
    pub role: String,
    pub content: ContentInput,
}

/// Message content: text, or typed parts.
#[derive(Debug, Clone)]
pub enum ContentInput {
    Text(String),
    Parts(Vec<PartInput>),
}

/// One typed content part (`{"type": "text", "text": …}`).
#[derive(Debug, Clone)]
pub struct PartInput {
    pub kind: String,
    pub text: Option<String>,
}

fn in_range(param: &str, v: f32, lo: f32, hi: f32) -> Result<f32, FieldError> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(v)
    } else {
        Err(FieldError::invalid(
            param,
            format!("'{param}' must be between {lo} and {hi}, got {v}."),
        ))
    }
}

fn opt_range(param: &str, v: Option<f32>, lo: f32, hi: f32) -> Result<Option<f32>, FieldError> {
    v.map(|v| in_range(param, v, lo, hi)).transpose()
}

/// Sampling fields and stop strings, range-checked; the backend applies its model's defaults.
pub fn sampling(f: &SamplingInput) -> Result<(SamplingRequest, Vec<String>), FieldError> {
    if let Some(n) = f.n
        && n != 1
    {
        return Err(FieldError::unsupported(
            "n",
            format!("Only n=1 is supported, got n={n}."),
        ));
    }
    if f.logit_bias {
        return Err(FieldError::unsupported(
            "logit_bias",
            "logit_bias is not supported.",
        ));
    }
    if let Some(p) = f.top_p
        && !(p.is_finite() && p > 0.0 && p <= 1.0)
    {
        return Err(FieldError::invalid(
            "top_p",
            format!("'top_p' must be in (0, 1], got {p}."),
        ));
    }
    let top_k = match f.top_k {
        Some(k) if k < 0 => {
            return Err(FieldError::invalid(
                "top_k",
                format!("'top_k' must be >= 0, got {k}."),
            ));
        }
        Some(k) => Some(usize::try_from(k).unwrap_or(usize::MAX)),
        None => None,
    };
    let repeat_last_n = match f.repeat_last_n {
        Some(-1) => Some(usize::MAX),
        Some(n) if n < -1 => {
            return Err(FieldError::invalid(
                "repeat_last_n",
                format!("'repeat_last_n' must be -1 (the whole sequence) or >= 0, got {n}."),
            ));
        }
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        None => None,
    };
    let params = SamplingRequest {
        temperature: opt_range("temperature", f.temperature, 0.0, 2.0)?,
        top_p: f.top_p,
        top_k,
        seed: f.seed.map(|s| s as u64),
        repetition_penalty: opt_range("repetition_penalty", f.repetition_penalty, 0.01, 10.0)?,
        repeat_last_n,
        presence_penalty: opt_range("presence_penalty", f.presence_penalty, -2.0, 2.0)?,
        frequency_penalty: opt_range("frequency_penalty", f.frequency_penalty, -2.0, 2.0)?,
    };
    if f.stop.len() > MAX_STOPS {
        return Err(FieldError::invalid(
            "stop",
            format!(
                "'stop' may hold at most {MAX_STOPS} sequences, got {}.",
                f.stop.len()
            ),
        ));
    }
    if f.stop.iter().any(String::is_empty) {
        return Err(FieldError::invalid(
            "stop",
            "'stop' sequences must not be empty.",
        ));
    }
    Ok((params, f.stop.clone()))
}

/// Chat messages as the template renders them.
pub fn chat_messages(messages: Vec<MessageInput>) -> Result<Vec<ChatMessage>, FieldError> {
    if messages.is_empty() {
        return Err(FieldError::invalid(
            "messages",
            "'messages' must hold at least one message.",
        ));
    }
    messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                "tool" => "tool",
                other => {
                    return Err(FieldError::invalid(
                        format!("messages[{i}].role"),
                        format!("Unsupported role '{other}'; use system, developer, user, assistant or tool."),
                    ));
                }
            };
            let content = match m.content {
                ContentInput::Text(t) => t,
                ContentInput::Parts(parts) => {
                    let mut text = String::new();
                    for (j, p) in parts.into_iter().enumerate() {
                        match (p.kind.as_str(), p.text) {
                            ("text", Some(t)) => text.push_str(&t),
                            (kind, _) => {
                                return Err(FieldError::unsupported(
                                    format!("messages[{i}].content[{j}].type"),
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
) -> Result<usize, FieldError> {
    if prompt_len >= context {
        return Err(FieldError::context_length(
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
                Err(FieldError::context_length(
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

/// The `keep_alive` field ("10m", seconds, negative for forever, 0 to unload when done).
pub fn keep_alive(v: Option<&serde_json::Value>) -> Result<Option<KeepAlive>, FieldError> {
    v.map(|v| KeepAlive::parse_json(v).map_err(|m| FieldError::invalid("keep_alive", m)))
        .transpose()
}

/// A completion limit from the wire: at least 1.
pub fn max_tokens(v: Option<i64>, param: &str) -> Result<Option<usize>, FieldError> {
    match v {
        Some(n) if n < 1 => Err(FieldError::invalid(
            param,
            format!("'{param}' must be at least 1, got {n}."),
        )),
        Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        None => Ok(None),
    }
}

/// Client-sent token ids: a non-empty list of non-negative ids.
pub fn token_ids(ids: &[i64], param: &str) -> Result<Vec<u32>, FieldError> {
    if ids.is_empty() {
        return Err(FieldError::invalid(
            param,
            format!("'{param}' must not be an empty token list."),
        ));
    }
    ids.iter()
        .map(|&id| {
            u32::try_from(id).map_err(|_| {
                FieldError::invalid(param, format!("Token id {id} is not a valid token id."))
            })
        })
        .collect()
}

/// Token ids checked against a model's vocabulary.
pub fn in_vocab(ids: Vec<u32>, vocab: usize, param: &str) -> Result<Vec<u32>, FieldError> {
    match ids.iter().find(|&&t| t as usize >= vocab) {
        Some(bad) => Err(FieldError::invalid(
            param,
            format!("Token id {bad} is outside the vocabulary (0..{vocab})."),
        )),
        None => Ok(ids),
    }
}

/// Between 1 and [`MAX_PROMPTS`] prompts.
pub fn prompt_count(prompts: Vec<Prompt>, field: &str) -> Result<Vec<Prompt>, FieldError> {
    if prompts.is_empty() || prompts.len() > MAX_PROMPTS {
        return Err(FieldError::invalid(
            field,
            format!(
                "'{field}' must hold between 1 and {MAX_PROMPTS} items, got {}.",
                prompts.len()
            ),
        ));
    }
    Ok(prompts)
}

/// The name of prompt `i` of `n` in errors: `input`, or `input[i]` when there are several.
pub fn item_param(i: usize, n: usize, field: &str) -> String {
    if n == 1 {
        field.to_string()
    } else {
        format!("{field}[{i}]")
    }
}

/// Embedding inputs: no text may be empty.
pub fn embedding_inputs(inputs: Vec<Prompt>, field: &str) -> Result<Vec<Prompt>, FieldError> {
    let n = inputs.len();
    if let Some(i) = inputs
        .iter()
        .position(|p| matches!(p, Prompt::Text(t) if t.is_empty()))
    {
        let param = item_param(i, n, field);
        return Err(FieldError::invalid(
            param.clone(),
            format!("'{param}' must not be an empty string."),
        ));
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::super::request::FieldErrorKind;
    use super::*;

    #[test]
    fn ranges_name_the_field() {
        let f = SamplingInput {
            temperature: Some(3.0),
            ..Default::default()
        };
        assert_eq!(sampling(&f).unwrap_err().param, "temperature");
        let f = SamplingInput {
            n: Some(2),
            ..Default::default()
        };
        let e = sampling(&f).unwrap_err();
        assert_eq!(
            (e.param.as_str(), e.kind),
            ("n", FieldErrorKind::Unsupported)
        );
        let f = SamplingInput {
            top_p: Some(0.0),
            ..Default::default()
        };
        assert_eq!(sampling(&f).unwrap_err().param, "top_p");
        let f = SamplingInput {
            stop: vec!["a".into(); 5],
            ..Default::default()
        };
        assert_eq!(sampling(&f).unwrap_err().param, "stop");
    }

    #[test]
    fn defaults_fill_gaps_and_request_wins() {
        let d = crate::catalog::SamplingDefaults {
            temperature: Some(0.7),
            top_k: Some(40),
            ..Default::default()
        };
        let (p, _) = sampling(&SamplingInput::default()).unwrap();
        let p = p.resolve(&d);
        assert_eq!((p.temperature, p.top_k), (0.7, 40));
        let f = SamplingInput {
            temperature: Some(0.0),
            ..Default::default()
        };
        assert_eq!(sampling(&f).unwrap().0.resolve(&d).temperature, 0.0);
    }

    #[test]
    fn repeat_window_spellings() {
        let d = crate::catalog::SamplingDefaults {
            repetition_penalty: Some(1.1),
            repeat_last_n: Some(64),
            ..Default::default()
        };
        let window = |n: Option<i64>| {
            let f = SamplingInput {
                repeat_last_n: n,
                ..Default::default()
            };
            sampling(&f).map(|(p, _)| p.resolve(&d).repeat_last_n)
        };
        assert_eq!(window(None).unwrap(), Some(64));
        assert_eq!(window(Some(0)).unwrap(), Some(0));
        assert_eq!(window(Some(16)).unwrap(), Some(16));
        assert_eq!(window(Some(-1)).unwrap(), None, "-1 is the whole sequence");
        assert_eq!(window(Some(-2)).unwrap_err().param, "repeat_last_n");
    }

    #[test]
    fn messages_name_the_part_at_fault() {
        let m = |role: &str, content| MessageInput {
            role: role.into(),
            content,
        };
        let ok = chat_messages(vec![m("developer", ContentInput::Text("x".into()))]).unwrap();
        assert_eq!(ok[0].role, "system");
        let e = chat_messages(vec![m("robot", ContentInput::Text(String::new()))]).unwrap_err();
        assert_eq!(e.param, "messages[0].role");
        let part = PartInput {
            kind: "image_url".into(),
            text: None,
        };
        let e = chat_messages(vec![m("user", ContentInput::Parts(vec![part]))]).unwrap_err();
        assert_eq!(
            (e.param.as_str(), e.kind),
            ("messages[0].content[0].type", FieldErrorKind::Unsupported)
        );
        assert!(chat_messages(Vec::new()).is_err());
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
        assert_eq!(e.kind, FieldErrorKind::ContextLength);
        let e = max_new_tokens(None, "max_tokens", 100, 100, None, "messages").unwrap_err();
        assert_eq!(
            (e.kind, e.param.as_str()),
            (FieldErrorKind::ContextLength, "messages")
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

    #[test]
    fn prompt_lists_are_bounded_and_inputs_non_empty() {
        assert!(prompt_count(Vec::new(), "prompt").is_err());
        let two = vec![Prompt::Text("a".into()), Prompt::Text(String::new())];
        assert_eq!(prompt_count(two.clone(), "prompt").unwrap().len(), 2);
        assert_eq!(
            embedding_inputs(two, "input").unwrap_err().param,
            "input[1]"
        );
    }
}
