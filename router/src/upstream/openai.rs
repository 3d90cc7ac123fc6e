//! The OpenAI-compatible client (llama-server, vLLM, another nfai, a cloud API):
//! `/v1/chat/completions` and `/v1/completions`, streamed as SSE when the client streams and
//! asked for one whole answer otherwise, and `/v1/embeddings`.

use futures::StreamExt;
use nfai_inference::{EngineError, FinishReason, GenerateEvent, Usage};
use serde_json::{Map, Value, json};

use super::http::{Call, LineParser, line_events};
use crate::backend::*;
use crate::error::ApiError;

/// The generation fields of a request body; only those the client set.
fn generation_fields(o: &GenerationOptions, m: &mut Map<String, Value>) {
    let s = &o.sampling;
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put("temperature", s.temperature.map(Value::from));
    put("top_p", s.top_p.map(Value::from));
    put("top_k", s.top_k.map(Value::from));
    put("seed", s.seed.map(Value::from));
    put("max_tokens", o.max_tokens.map(Value::from));
    put("repetition_penalty", s.repetition_penalty.map(Value::from));
    put("presence_penalty", s.presence_penalty.map(Value::from));
    put("frequency_penalty", s.frequency_penalty.map(Value::from));
    put("ignore_eos", o.ignore_eos.then_some(Value::Bool(true)));
    if !o.stop.is_empty() {
        m.insert("stop".into(), json!(o.stop));
    }
    m.insert("stream".into(), Value::Bool(o.stream));
    if o.stream {
        m.insert("stream_options".into(), json!({ "include_usage": true }));
    }
}

fn finish_reason(v: &Value) -> Option<FinishReason> {
    match v.as_str()? {
        "length" => Some(FinishReason::Length),
        _ => Some(FinishReason::Stop),
    }
}

fn usage(v: &Value) -> Usage {
    Usage {
        prompt_tokens: v["prompt_tokens"].as_u64().unwrap_or(0) as usize,
        completion_tokens: v["completion_tokens"].as_u64().unwrap_or(0) as usize,
    }
}

/// The answer to a generation request as events: parsed line by line when the upstream streams
/// (it was asked to, or ignored `"stream": false`), else one whole chat or text completion.
async fn answer(
    call: &Call<'_>,
    res: reqwest::Response,
    chat: bool,
) -> Result<EventStream, ApiError> {
    let streamed = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if streamed {
        return Ok(line_events(
            res,
            label(call),
            SseParser::new(chat, label(call)),
        ));
    }
    let v = call.json(res).await?;
    let choice = v["choices"].as_array().and_then(|a| a.first());
    let text = choice.and_then(|c| {
        if chat {
            c["message"]["content"].as_str()
        } else {
            c["text"].as_str()
        }
    });
    let reason = choice.and_then(|c| finish_reason(&c["finish_reason"]));
    let (Some(text), Some(reason)) = (text, reason) else {
        return Err(super::upstream_error(format!(
            "{}: the answer has no choice with text and a finish reason",
            label(call)
        )));
    };
    let end = GenerateEvent::Finished {
        reason,
        usage: usage(&v["usage"]),
        text: text.to_string(),
    };
    Ok(futures::stream::iter([end]).boxed())
}

/// Parses SSE `data:` lines of chat or text completion chunks.
pub struct SseParser {
    pub chat: bool,
    pub label: String,
    reason: Option<FinishReason>,
    usage: Usage,
}

impl SseParser {
    pub fn new(chat: bool, label: String) -> Self {
        Self {
            chat,
            label,
            reason: None,
            usage: Usage {
                prompt_tokens: 0,
                completion_tokens: 0,
            },
        }
    }

    fn finished(&mut self) -> Option<GenerateEvent> {
        let reason = self.reason.take()?;
        Some(GenerateEvent::Finished {
            reason,
            usage: self.usage,
            text: String::new(),
        })
    }
}

impl LineParser for SseParser {
    fn line(&mut self, line: &str) -> Vec<GenerateEvent> {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            return Vec::new();
        };
        if data == "[DONE]" {
            let end = self.finished().unwrap_or_else(|| {
                GenerateEvent::Failed(EngineError::Compute(format!(
                    "{}: the stream ended without a finish reason",
                    self.label
                )))
            });
            return vec![end];
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                return vec![GenerateEvent::Failed(EngineError::Compute(format!(
                    "{}: unreadable chunk: {e}",
                    self.label
                )))];
            }
        };
        if let Some(err) = v.get("error") {
            let msg = super::http::error_message(&json!({ "error": err }).to_string());
            return vec![GenerateEvent::Failed(EngineError::Compute(format!(
                "{}: {msg}",
                self.label
            )))];
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = usage(u);
        }
        let mut out = Vec::new();
        if let Some(c) = v["choices"].as_array().and_then(|a| a.first()) {
            let text = if self.chat {
                c["delta"]["content"].as_str()
            } else {
                c["text"].as_str()
            };
            if let Some(t) = text.filter(|t| !t.is_empty()) {
                out.push(GenerateEvent::Token {
                    id: 0,
                    text: t.to_string(),
                });
            }
            if let Some(r) = finish_reason(&c["finish_reason"]) {
                self.reason = Some(r);
            }
        }
        out
    }

    fn eof(&mut self) -> Option<GenerateEvent> {
        self.finished()
    }
}

fn label(call: &Call<'_>) -> String {
    format!("upstream {} ({})", call.cfg.name, call.base)
}

pub async fn chat(call: Call<'_>, model: &str, req: ChatRequest) -> Result<Generation, ApiError> {
    let mut m = Map::new();
    m.insert("model".into(), json!(model));
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| json!({ "role": m.role, "content": m.content }))
        .collect();
    m.insert("messages".into(), Value::Array(messages));
    generation_fields(&req.options, &mut m);
    let stream = req.options.stream;
    let res = call
        .post_generation("/v1/chat/completions", &Value::Object(m), stream)
        .await?;
    Ok(Generation {
        events: answer(&call, res, true).await?,
        echo: String::new(),
    })
}

/// One streamed `/v1/completions` per prompt.
pub async fn complete(
    call: Call<'_>,
    model: &str,
    req: CompletionRequest,
) -> Result<Vec<Generation>, ApiError> {
    let mut out = Vec::with_capacity(req.prompts.len());
    for p in &req.prompts {
        let (prompt, echo) = match p {
            Prompt::Text(t) => (json!(t), if req.echo { t.clone() } else { String::new() }),
            Prompt::Tokens(_) if req.echo => {
                return Err(ApiError::unsupported(
                    "echo",
                    "echo with token-id prompts is not supported through an upstream.",
                ));
            }
            Prompt::Tokens(ids) => (json!(ids), String::new()),
        };
        let mut m = Map::new();
        m.insert("model".into(), json!(model));
        m.insert("prompt".into(), prompt);
        generation_fields(&req.options, &mut m);
        let res = call
            .post_generation("/v1/completions", &Value::Object(m), req.options.stream)
            .await?;
        out.push(Generation {
            events: answer(&call, res, false).await?,
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
    let input: Vec<Value> = req
        .inputs
        .iter()
        .map(|p| match p {
            Prompt::Text(t) => json!(t),
            Prompt::Tokens(ids) => json!(ids),
        })
        .collect();
    let n = input.len();
    let mut body = json!({ "model": model, "input": input, "encoding_format": "float" });
    if let Some(d) = req.dimensions {
        body["dimensions"] = json!(d);
    }
    let v = call.json(call.post("/v1/embeddings", &body).await?).await?;
    let mut data: Vec<(usize, Vec<f32>)> = v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, d)| {
                    let idx = d["index"].as_u64().map(|x| x as usize).unwrap_or(i);
                    let vec = serde_json::from_value(d["embedding"].clone()).unwrap_or_default();
                    (idx, vec)
                })
                .collect()
        })
        .unwrap_or_default();
    data.sort_by_key(|(i, _)| *i);
    if data.len() != n || data.iter().any(|(_, v)| v.is_empty()) {
        return Err(super::upstream_error(format!(
            "{}: expected {n} embeddings, got an unusable answer",
            label(&call)
        )));
    }
    let prompt_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) as usize;
    Ok(Embeddings {
        vectors: data.into_iter().map(|(_, v)| v).collect(),
        prompt_tokens,
    })
}

/// Ids `/v1/models` lists with `state == "ready"` (nfai peers report residency this way).
pub async fn resident(call: Call<'_>) -> Result<Vec<String>, ApiError> {
    let v = call.json(call.get("/v1/models").await?).await?;
    Ok(v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["state"].as_str() == Some("ready"))
                .flat_map(|m| {
                    let aliases = m["aliases"].as_array().cloned().unwrap_or_default();
                    std::iter::once(m["id"].clone()).chain(aliases)
                })
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}
