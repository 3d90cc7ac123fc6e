//! `POST /api/show`: what Ollama clients read about a model before using it. For a native model
//! the answer comes from its files (GGUF metadata, or a BERT folder's `config.json`) and its
//! catalog entry: architecture, parameter count, quantisation, context length, chat template,
//! sampling defaults and capabilities. A routed name shows what the route table knows.

use std::collections::HashMap;
use std::path::Path;

use axum::Json;
use axum::extract::State;
use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Value as Meta;
use serde_json::{Map, Value, json};

use super::extract::{OllamaJson, route};
use crate::backend::error::BackendError;
use crate::backend::native::blocking;
use crate::catalog::{ModelEntry, ModelFormat, ModelKind};
use crate::error::OllamaError;
use crate::state::AppState;
use crate::time::rfc3339;

#[derive(Debug, serde::Deserialize)]
pub struct ShowRequest {
    #[serde(alias = "name")]
    pub model: String,
}

pub async fn show(
    State(state): State<AppState>,
    OllamaJson(req): OllamaJson<ShowRequest>,
) -> Result<Json<Value>, OllamaError> {
    route(&state, &req.model)?;
    let name = req.model.strip_suffix(":latest").unwrap_or(&req.model);
    let modified = rfc3339(u128::from(state.started_unix()) * 1_000_000_000);
    if let Some(r) = state.routes().get(name) {
        let capability = capability(r.config.kind == "embedding");
        return Ok(Json(json!({
            "modelfile": "", "parameters": "", "template": "",
            "details": details("", r.config.kind, "", ""),
            "model_info": {}, "capabilities": [capability], "modified_at": modified,
        })));
    }
    let entry = state
        .registry()
        .catalog()
        .resolve(name)
        .ok_or_else(|| BackendError::ModelNotFound(req.model.clone()))?
        .clone();
    let dir = state.registry().model_dir().to_path_buf();
    let mut v = blocking(move || describe(&entry, &dir)).await?;
    v["modified_at"] = json!(modified);
    Ok(Json(v))
}

fn capability(embedding: bool) -> &'static str {
    if embedding { "embedding" } else { "completion" }
}

fn details(format: &str, family: &str, size: &str, quant: &str) -> Value {
    json!({
        "parent_model": "", "format": format, "family": family, "families": [family],
        "parameter_size": size, "quantization_level": quant,
    })
}

/// `268.10M`, `8.03B`: Ollama's spelling of a parameter count.
fn parameter_size(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n => format!("{n}"),
    }
}

/// The catalog's sampling defaults as Modelfile `PARAMETER` lines.
fn parameters(e: &ModelEntry) -> String {
    let s = &e.sampling;
    let mut lines = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            lines.push(format!("{k:<24}{v}"));
        }
    };
    put("temperature", s.temperature.map(|x| x.to_string()));
    put("top_p", s.top_p.map(|x| x.to_string()));
    put("top_k", s.top_k.map(|x| x.to_string()));
    put(
        "repeat_penalty",
        s.repetition_penalty.map(|x| x.to_string()),
    );
    put("repeat_last_n", s.repeat_last_n.map(|x| x.to_string()));
    put("num_predict", s.max_tokens.map(|x| x.to_string()));
    put("num_ctx", e.context_length.map(|x| x.to_string()));
    lines.join("\n")
}

fn describe(e: &ModelEntry, model_dir: &Path) -> Result<Value, BackendError> {
    let path = e.location(model_dir);
    let unreadable = |err: String| {
        BackendError::Unavailable(format!(
            "Model `{}`: its files cannot be read ({err}); run `nfai models fetch {}`.",
            e.id, e.id
        ))
    };
    let (info, format, family, params, quant, template) = match e.format {
        ModelFormat::Gguf => {
            let g = nfai_models::GgufFile::open(&path).map_err(|x| unreadable(x.to_string()))?;
            let (params, dominant) = weights(&g);
            let quant = g
                .opt_u32("general.file_type")
                .ok()
                .flatten()
                .and_then(file_type_name)
                .map_or(dominant, str::to_string);
            let mut info = scalars(g.metadata());
            info.insert("general.parameter_count".into(), json!(params));
            let family = g.architecture().unwrap_or("").to_string();
            let template = e
                .chat_template
                .clone()
                .or_else(|| g.string("tokenizer.chat_template").ok().map(str::to_string))
                .unwrap_or_default();
            (info, "gguf", family, params, quant, template)
        }
        ModelFormat::E5 => {
            let x = nfai_models::E5Info::read(&path).map_err(|x| unreadable(x.to_string()))?;
            let params = (x.vocab + x.context_length) * x.hidden
                + x.layers * (4 * x.hidden * x.hidden + 2 * x.hidden * x.ffn);
            let mut info = Map::new();
            for (k, v) in [
                ("general.architecture", json!("xlm-roberta")),
                ("general.parameter_count", json!(params)),
                ("xlm-roberta.context_length", json!(x.context_length)),
                ("xlm-roberta.embedding_length", json!(x.hidden)),
                ("xlm-roberta.block_count", json!(x.layers)),
                ("xlm-roberta.feed_forward_length", json!(x.ffn)),
                ("xlm-roberta.attention.head_count", json!(x.heads)),
                ("xlm-roberta.vocab_size", json!(x.vocab)),
            ] {
                info.insert(k.into(), v);
            }
            let params = params as u64;
            (
                info,
                "e5s1",
                "xlm-roberta".into(),
                params,
                "Q4_0".into(),
                String::new(),
            )
        }
        ModelFormat::Bert => {
            let text = std::fs::read_to_string(path.join("config.json"))
                .map_err(|x| unreadable(x.to_string()))?;
            let c: nfai_models::BertConfig =
                serde_json::from_str(&text).map_err(|x| unreadable(x.to_string()))?;
            let bytes = nfai_models::memory::estimate_bert(&path)
                .map_err(|x| unreadable(x.to_string()))?
                .saturating_sub(nfai_models::memory::BERT_OVERHEAD_BYTES);
            let params = bytes / 4;
            let mut info = Map::new();
            for (k, v) in [
                ("general.architecture", json!("bert")),
                ("general.parameter_count", json!(params)),
                ("bert.context_length", json!(c.max_position_embeddings)),
                ("bert.embedding_length", json!(c.hidden_size)),
                ("bert.block_count", json!(c.num_hidden_layers)),
                ("bert.feed_forward_length", json!(c.intermediate_size)),
                ("bert.attention.head_count", json!(c.num_attention_heads)),
                ("bert.vocab_size", json!(c.vocab_size)),
            ] {
                info.insert(k.into(), v);
            }
            (
                info,
                "safetensors",
                "bert".into(),
                params,
                "F32".into(),
                String::new(),
            )
        }
    };
    Ok(json!({
        "modelfile": "",
        "parameters": parameters(e),
        "template": template,
        "details": details(format, &family, &parameter_size(params), &quant),
        "model_info": info,
        "capabilities": [capability(e.kind == ModelKind::Embedding)],
    }))
}

/// Parameters, and the type holding most of the weight bytes (`Q4_K`, `Q8_0`, …): the
/// quantisation shown when the file does not name its mix.
fn weights(g: &nfai_models::GgufFile) -> (u64, String) {
    let mut params = 0u64;
    let mut bytes: HashMap<GgmlDType, u64> = HashMap::new();
    for name in g.tensor_names() {
        let Some(info) = g.tensor_info(name) else {
            continue;
        };
        let n = info.shape.elem_count() as u64;
        params += n;
        let t = info.ggml_dtype;
        *bytes.entry(t).or_default() += n / t.block_size() as u64 * t.type_size() as u64;
    }
    let quant = bytes
        .into_iter()
        .max_by_key(|(_, b)| *b)
        .map(|(t, _)| ggml_name(t))
        .unwrap_or_default();
    (params, quant.to_string())
}

/// llama.cpp's `general.file_type` (`llama_ftype`) names for the common mixes.
fn file_type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

fn ggml_name(t: GgmlDType) -> &'static str {
    match t {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

/// Scalar metadata as JSON; arrays (the vocabulary, scores, merges) are shown as `null`, as
/// Ollama does unless asked for verbose output.
fn scalars(meta: &HashMap<String, Meta>) -> Map<String, Value> {
    let mut keys: Vec<&String> = meta.keys().collect();
    keys.sort();
    keys.into_iter()
        .filter(|k| k.as_str() != "tokenizer.chat_template")
        .map(|k| {
            let v = match &meta[k] {
                Meta::U8(x) => json!(x),
                Meta::I8(x) => json!(x),
                Meta::U16(x) => json!(x),
                Meta::I16(x) => json!(x),
                Meta::U32(x) => json!(x),
                Meta::I32(x) => json!(x),
                Meta::U64(x) => json!(x),
                Meta::I64(x) => json!(x),
                Meta::F32(x) => json!(x),
                Meta::F64(x) => json!(x),
                Meta::Bool(x) => json!(x),
                Meta::String(x) => json!(x),
                Meta::Array(_) => Value::Null,
            };
            (k.clone(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_spelled_as_ollama_does() {
        assert_eq!(parameter_size(268_098_176), "268.10M");
        assert_eq!(parameter_size(8_030_261_248), "8.03B");
        assert_eq!(parameter_size(999), "999");
    }
}
