//! The Ollama client: `/api/chat`, `/api/generate` and `/api/embed` on one node, NDJSON streams
//! (or one line with `"stream": false`) turned into [`GenerateEvent`]s, OpenAI parameters
//! mapped to Ollama `options`.

use nfai_inference::{EngineError, FinishReason, GenerateEvent, Usage};
use serde_json::{Map, Value, json};

use super::http::Call;
use super::lines::LineParser;
use crate::backend::*;
use crate::error::ApiError;

/// `options` of an Ollama request from OpenAI-style generation options.
pub fn options(o: &GenerationOptions, num_ctx: Option<usize>) -> Value {
    let s = &o.sampling;
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put("temperature", s.temperature.map(Value::from));
    put("top_p", s.top_p.map(Value::from));
    put("top_k", s.top_k.map(Value::from));
    put("seed", s.seed.map(Value::from));
    put("num_predict", o.max_tokens.map(Value::from));
    put("repeat_penalty", s.repetition_penalty.map(Value::from));
    put("presence_penalty", s.presence_penalty.map(Value::from));
    put("frequency_penalty", s.frequency_penalty.map(Value::from));
    put("num_ctx", num_ctx.map(Value::from));
    if !o.stop.is_empty() {
        m.insert("stop".into(), json!(o.stop));
    }
    Value::Object(m)
}

/// `keep_alive` as Ollama reads it: seconds, negative for forever.
pub fn keep_alive_value(k: KeepAlive) -> Value {
    match k.duration() {
        None => json!(-1),
        Some(d) if d.subsec_nanos() == 0 => json!(d.as_secs()),
        Some(d) => json!(format!("{}ms", d.as_millis())),
    }
}

/// Adds the request's `keep_alive`, else the upstream's configured one.
fn with_keep_alive(mut body: Value, call: &Call<'_>, keep_alive: Option<KeepAlive>) -> Value {
    let value = keep_alive
        .map(keep_alive_value)
        .or_else(|| call.cfg.keep_alive.clone().map(Value::String));
    if let (Some(k), Some(o)) = (value, body.as_object_mut()) {
        o.insert("keep_alive".into(), k);
    }
    body
}

/// Parses Ollama's NDJSON lines; `field` is `message.content` (chat) or `response` (generate).
pub struct NdjsonParser {
    pub chat: bool,
    pub label: String,
}

/// The finish reason of a final Ollama line.
pub fn finish_reason(v: &Value) -> FinishReason {
    match v["done_reason"].as_str() {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

impl LineParser for NdjsonParser {
    fn line(&mut self, line: &str) -> Vec<GenerateEvent> {
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return vec![GenerateEvent::Failed(EngineError::Compute(format!(
                    "{}: unreadable stream line: {e}",
                    self.label
                )))];
            }
        };
        if let Some(err) = v.get("error") {
            let msg = err
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| err.to_string());
            return vec![GenerateEvent::Failed(EngineError::Compute(format!(
                "{}: {msg}",
                self.label
            )))];
        }
        let text = if self.chat {
            v["message"]["content"].as_str()
        } else {
            v["response"].as_str()
        };
        let text = text.unwrap_or_default().to_string();
        if v["done"].as_bool() == Some(true) {
            let usage = Usage {
                prompt_tokens: v["prompt_eval_count"].as_u64().unwrap_or(0) as usize,
                completion_tokens: v["eval_count"].as_u64().unwrap_or(0) as usize,
            };
            return vec![GenerateEvent::Finished {
                reason: finish_reason(&v),
                usage,
                text,
            }];
        }
        vec![GenerateEvent::Token { id: 0, text }]
    }
}

pub async fn chat(call: Call<'_>, model: &str, req: ChatRequest) -> Result<Generation, ApiError> {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| json!({ "role": m.role, "content": m.content }))
        .collect();
    let body = json!({
        "model": model,
        "messages": messages,
        "stream": req.options.stream,
        "options": options(&req.options, call.cfg.num_ctx),
    });
    let body = with_keep_alive(body, &call, req.options.keep_alive);
    let res = call
        .post_generation("/api/chat", &body, req.options.stream)
        .await?;
    let parser = NdjsonParser {
        chat: true,
        label: call.label(),
    };
    Ok(Generation {
        events: call.events(res, parser),
        echo: String::new(),
    })
}

/// One raw `/api/generate` per prompt (OpenAI completions take the prompt as is).
pub async fn complete(
    call: Call<'_>,
    model: &str,
    req: CompletionRequest,
) -> Result<Vec<Generation>, ApiError> {
    let mut out = Vec::with_capacity(req.prompts.len());
    for (i, p) in req.prompts.iter().enumerate() {
        let Prompt::Text(text) = p else {
            return Err(ApiError::unsupported(
                "prompt",
                format!(
                    "Token-id prompts cannot be sent to the Ollama upstream {} (prompt {i}).",
                    call.cfg.name
                ),
            ));
        };
        let body = json!({
            "model": model,
            "prompt": text,
            "raw": true,
            "stream": req.options.stream,
            "options": options(&req.options, call.cfg.num_ctx),
        });
        let body = with_keep_alive(body, &call, req.options.keep_alive);
        let res = call
            .post_generation("/api/generate", &body, req.options.stream)
            .await?;
        let parser = NdjsonParser {
            chat: false,
            label: call.label(),
        };
        let echo = if req.echo {
            text.clone()
        } else {
            String::new()
        };
        out.push(Generation {
            events: call.events(res, parser),
            echo,
        });
    }
    Ok(out)
}

pub async fn embed(
    call: Call<'_>,
    model: &str,
    req: EmbeddingRequest,
) -> Result<Embeddings, ApiError> {
    let inputs = req
        .inputs
        .iter()
        .map(|p| match p {
            Prompt::Text(t) => Ok(t.clone()),
            Prompt::Tokens(_) => Err(ApiError::unsupported(
                "input",
                format!(
                    "Token-id inputs cannot be sent to the Ollama upstream {}.",
                    call.cfg.name
                ),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = json!({ "model": model, "input": inputs, "truncate": true });
    if let Some(d) = req.dimensions {
        body["dimensions"] = json!(d);
    }
    let res = call
        .post("/api/embed", &with_keep_alive(body, &call, req.keep_alive))
        .await?;
    let v: Value = call.json(res).await?;
    let vectors: Vec<Vec<f32>> = serde_json::from_value(v["embeddings"].clone())
        .map_err(|e| super::upstream_error(format!("{}: bad embeddings: {e}", call.label())))?;
    if vectors.len() != inputs.len() {
        return Err(super::upstream_error(format!(
            "{}: {} vectors for {} inputs",
            call.label(),
            vectors.len(),
            inputs.len()
        )));
    }
    Ok(Embeddings {
        vectors,
        prompt_tokens: v["prompt_eval_count"].as_u64().unwrap_or(0) as usize,
    })
}

/// Names of the models `/api/ps` reports resident.
pub async fn resident(call: Call<'_>) -> Result<Vec<String>, ApiError> {
    let v: Value = call.json(call.get("/api/ps").await?).await?;
    Ok(names(&v))
}

/// Names of the models `/api/tags` reports installed.
pub async fn tags(call: Call<'_>) -> Result<Vec<String>, ApiError> {
    let v: Value = call.json(call.get("/api/tags").await?).await?;
    Ok(names(&v))
}

fn names(v: &Value) -> Vec<String> {
    v["models"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    m["model"]
                        .as_str()
                        .or(m["name"].as_str())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}
