//! OpenAI's response object and its output items (`file_search_call`, `message` with
//! `output_text` and `file_citation` annotations), built from a [`Draft`]: what is known of a
//! response before its answer is generated.

use nfai_inference::Usage;
use nfai_retrieval::SearchHit;
use serde_json::{Map, Value, json};

use crate::responses::cite::Annotation;

/// An id of this server's shape: `prefix_` and 32 hex digits.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", rand::random::<u128>())
}

/// The file search that ran for a response.
#[derive(Debug, Clone)]
pub struct Searched {
    pub item_id: String,
    pub queries: Vec<String>,
    /// Best first.
    pub hits: Vec<SearchHit>,
    /// `include` asked for the results.
    pub include_results: bool,
}

/// A response before its answer.
#[derive(Debug, Clone)]
pub struct Draft {
    pub id: String,
    pub created_at: u64,
    /// The name answered in `model`.
    pub model: String,
    pub message_id: String,
    pub search: Option<Searched>,
    /// The request's fields answered back (`instructions`, `tools`, `store`, …).
    pub echo: Map<String, Value>,
}

/// `usage` in the Responses API's shape.
pub fn usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

pub fn annotation(a: &Annotation) -> Value {
    json!({
        "type": "file_citation",
        "index": a.index,
        "file_id": a.file_id,
        "filename": a.filename,
    })
}

/// An `output_text` content part.
pub fn output_text(text: &str, annotations: &[Annotation]) -> Value {
    json!({
        "type": "output_text",
        "text": text,
        "annotations": annotations.iter().map(annotation).collect::<Vec<_>>(),
        "logprobs": [],
    })
}

fn result(h: &SearchHit) -> Value {
    let attributes = h.payload.attributes_json();
    json!({
        "file_id": h.payload.file_id,
        "filename": h.payload.filename,
        "score": h.score,
        "text": h.payload.text,
        "attributes": attributes,
    })
}

impl Draft {
    /// The `file_search_call` item in `status`; its results only once completed and asked for.
    pub fn search_item(&self, status: &str) -> Option<Value> {
        let s = self.search.as_ref()?;
        let done = status == "completed";
        let results =
            (done && s.include_results).then(|| s.hits.iter().map(result).collect::<Vec<_>>());
        Some(json!({
            "id": s.item_id,
            "type": "file_search_call",
            "status": status,
            "queries": if done { json!(s.queries) } else { json!([]) },
            "results": results,
        }))
    }

    /// The assistant `message` item.
    pub fn message(&self, status: &str, text: Option<(&str, &[Annotation])>) -> Value {
        let content = match text {
            Some((t, a)) => vec![output_text(t, a)],
            None => Vec::new(),
        };
        json!({
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": content,
        })
    }

    /// The response object in `status` with `output`.
    pub fn response(
        &self,
        status: &str,
        output: Vec<Value>,
        usage: Option<&Usage>,
        error: Option<Value>,
    ) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), json!(self.id));
        o.insert("object".into(), json!("response"));
        o.insert("created_at".into(), json!(self.created_at));
        o.insert("status".into(), json!(status));
        o.insert("model".into(), json!(self.model));
        o.insert("output".into(), Value::Array(output));
        o.insert("usage".into(), usage.map_or(Value::Null, self::usage));
        o.insert("error".into(), error.unwrap_or(Value::Null));
        let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
        o.insert("incomplete_details".into(), json!(incomplete));
        o.insert("background".into(), json!(false));
        o.insert("reasoning".into(), json!({"effort": null, "summary": null}));
        o.insert("service_tier".into(), json!("default"));
        for (k, v) in &self.echo {
            o.insert(k.clone(), v.clone());
        }
        Value::Object(o)
    }
}
