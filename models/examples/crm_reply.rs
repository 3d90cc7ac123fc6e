//! Answers one CRM request with a chat model as the server would render it: the model's own
//! chat template, greedy decoding until an end-of-turn token or 160 tokens, then prints the
//! reply and the timings.
//!
//! `cargo run -p nfai-models --example crm_reply -- [model.gguf] [request]`; the model
//! defaults to SmolLM2-135M-Instruct in the model dir (`nfai models fetch` puts it there).

use std::time::Instant;

use candle_core::Device;
use nfai_models::{BatchEntry, ChatMessage, Result, load_gguf_lm};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            nfai_models::default_model_dir()
                .join("smollm2-135m-instruct")
                .join("SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    let request = args.next().unwrap_or_else(|| {
        "Draft a short, polite reply to a customer asking when their order #4521 will be \
         delivered."
            .to_string()
    });
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    nfai_models::kernels::init_compute_pool(threads);
    let lm = load_gguf_lm(&path, &Device::Cpu, 2048, None)?;
    let messages = [
        ChatMessage::new("system", "You are a CRM assistant."),
        ChatMessage::new("user", request),
    ];
    let prompt = lm.chat_template.render(&messages, true)?;
    let ids = lm.tokenizer.encode(&prompt, true)?;
    let model = lm.model.as_ref();
    let eos = &model.info().eos_token_ids;
    let mut cache = model.new_cache();
    let mut input = ids.clone();
    let mut out = Vec::new();
    let start = Instant::now();
    let mut first = None;
    while out.len() < 160 {
        let logits = model.forward(&mut [BatchEntry {
            tokens: &input,
            cache: &mut cache,
        }])?;
        let row = logits.flatten_all()?.to_vec1::<f32>()?;
        let next = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as u32);
        first.get_or_insert(start.elapsed());
        if eos.contains(&next) {
            break;
        }
        out.push(next);
        input = vec![next];
    }
    let total = start.elapsed();
    println!("{}", lm.tokenizer.decode(&out, true)?);
    eprintln!(
        "{} prompt tokens, {} generated; first token {:.0} ms, {:.1} tokens/s after it ({threads} threads)",
        ids.len(),
        out.len(),
        first.unwrap_or_default().as_secs_f64() * 1e3,
        out.len().saturating_sub(1) as f64
            / (total - first.unwrap_or_default()).as_secs_f64().max(1e-9)
    );
    Ok(())
}
