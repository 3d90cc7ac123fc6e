//! Loading a causal LM from a GGUF file: the model (dispatched on `general.architecture`), its
//! tokenizer and its chat template, with the load timings logged.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;

use crate::chat_template::ChatTemplate;
use crate::gemma3::Gemma3;
use crate::gguf::GgufFile;
use crate::llama::Llama;
use crate::lm::CausalLm;
use crate::tokenizer::TextTokenizer;
use crate::{ModelError, Result};

/// Values of `general.architecture` this loader can run.
pub const SUPPORTED: &[&str] = &["gemma3", "llama", "qwen2", "qwen3"];

/// Everything needed to serve one language model.
pub struct LoadedLm {
    pub model: Arc<dyn CausalLm>,
    pub tokenizer: TextTokenizer,
    pub chat_template: ChatTemplate,
}

/// Loads the model in `path` onto `device` for contexts of up to `context_length` positions.
///
/// The chat template is `template_override` if given, else the file's
/// `tokenizer.chat_template`, else [`ChatTemplate::missing`]: a model without one (a base
/// model) still loads and serves completions, and chat requests get a clear error.
pub fn load_gguf_lm(
    path: &Path,
    device: &Device,
    context_length: usize,
    template_override: Option<&str>,
) -> Result<LoadedLm> {
    let start = Instant::now();
    let gguf = GgufFile::open(path)?;
    let read = start.elapsed();
    let arch = gguf.architecture()?.to_string();
    if !SUPPORTED.contains(&arch.as_str()) {
        return Err(ModelError::Unsupported(format!(
            "architecture `{arch}` in {} (supported: {})",
            path.display(),
            SUPPORTED.join(", ")
        )));
    }

    // The tokenizer (metadata only) is built while the weights are read.
    let (tokenizer, tokenizer_time, model, weights) = std::thread::scope(|scope| {
        let tokenizer = scope.spawn(|| {
            let t = Instant::now();
            crate::tokenizer::gguf::from_gguf(&gguf).map(|tok| (tok, t.elapsed()))
        });
        let t = Instant::now();
        let model: Result<Arc<dyn CausalLm>> = match arch.as_str() {
            "gemma3" => Gemma3::load(&gguf, device, context_length)
                .map(|m| Arc::new(m) as Arc<dyn CausalLm>),
            "llama" | "qwen2" | "qwen3" => {
                Llama::load(&gguf, device, context_length).map(|m| Arc::new(m) as Arc<dyn CausalLm>)
            }
            other => Err(ModelError::Unsupported(format!("architecture `{other}`"))),
        };
        let weights = t.elapsed();
        let tokenizer = tokenizer
            .join()
            .map_err(|_| ModelError::Tokenizer("tokenizer build panicked".into()))?;
        let (tokenizer, tokenizer_time) = tokenizer?;
        Ok::<_, ModelError>((tokenizer, tokenizer_time, model?, weights))
    })?;
    let chat_template = chat_template(&gguf, &tokenizer, template_override)?;
    tracing::info!(
        path = %path.display(),
        architecture = %arch,
        context_length = model.info().context_length,
        tensor_bytes = gguf.tensor_bytes(),
        read_ms = read.as_millis() as u64,
        tokenizer_ms = tokenizer_time.as_millis() as u64,
        weights_ms = weights.as_millis() as u64,
        total_ms = start.elapsed().as_millis() as u64,
        "loaded GGUF language model"
    );
    Ok(LoadedLm {
        model,
        tokenizer,
        chat_template,
    })
}

fn chat_template(
    gguf: &GgufFile,
    tokenizer: &TextTokenizer,
    template_override: Option<&str>,
) -> Result<ChatTemplate> {
    let token = |id: Option<u32>| {
        id.and_then(|id| tokenizer.id_to_token(id))
            .unwrap_or_default()
    };
    let bos = token(tokenizer.bos_id());
    let eos = token(gguf.opt_u32("tokenizer.ggml.eos_token_id")?);
    // A tokenizer that adds no BOS of its own (SmolLM2's) keeps what the template writes.
    let adds_bos = tokenizer
        .bos_id()
        .is_some_and(|b| tokenizer.encode("", true).is_ok_and(|ids| ids == [b]));
    let compile = |src: &str| -> Result<ChatTemplate> {
        let t = ChatTemplate::from_source(src, &bos, &eos)?;
        Ok(if adds_bos { t } else { t.keep_leading_bos() })
    };
    if let Some(src) = template_override {
        return compile(src);
    }
    if let Some(src) = gguf.opt_string("tokenizer.chat_template")? {
        return compile(src);
    }
    let name = gguf.path().file_name().map_or_else(
        || gguf.path().display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(ChatTemplate::missing(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChatMessage;
    use crate::gemma3::testutil::{TinySpec, write_tiny_gemma};
    use crate::lm::BatchEntry;

    #[test]
    fn loads_tiny_gemma_with_its_template() -> Result<()> {
        let file = write_tiny_gemma(&TinySpec::default())?;
        // The tiny file carries no template: it loads, and chat rendering says why it fails.
        let bare = load_gguf_lm(file.path(), &Device::Cpu, 32, None)?;
        assert!(!bare.chat_template.is_available());
        let err = bare
            .chat_template
            .render(&[ChatMessage::new("user", "ab")], true);
        assert!(matches!(err, Err(ModelError::Template(m)) if m.contains("no chat template")));
        let gemma = ChatTemplate::builtin_source("gemma3").unwrap_or_default();
        let lm = load_gguf_lm(file.path(), &Device::Cpu, 32, Some(gemma))?;
        assert_eq!(lm.model.info().architecture, "gemma3");
        assert_eq!(lm.model.info().context_length, 32);
        let prompt = lm
            .chat_template
            .render(&[ChatMessage::new("user", "ab")], true)?;
        assert_eq!(
            prompt,
            "<start_of_turn>user\nab<end_of_turn>\n<start_of_turn>model\n"
        );
        let ids = lm.tokenizer.encode(&prompt, true)?;
        assert_eq!(ids.first(), Some(&2));
        assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 1);
        let mut cache = lm.model.new_cache();
        let logits = lm.model.forward(&mut [BatchEntry {
            tokens: &ids,
            cache: &mut cache,
        }])?;
        assert_eq!(logits.dims(), &[1, 300]);

        let custom = load_gguf_lm(file.path(), &Device::Cpu, 32, Some("{{ bos_token }}X"))?;
        assert_eq!(custom.chat_template.render(&[], false)?, "X");
        assert!(load_gguf_lm(file.path(), &Device::Cpu, 32, Some("{% if %}")).is_err());
        Ok(())
    }

    /// A tensor type nfai has no kernel for (IQ4_NL here) is refused when the file is opened,
    /// naming the type and the tensor, by the load and by the memory estimate alike.
    #[test]
    fn unknown_quant_types_are_refused_by_name() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| ModelError::io(Path::new("tmp"), e))?;
        let path = dir.path().join("iq4.gguf");
        let s = |b: &mut Vec<u8>, t: &str| {
            b.extend((t.len() as u64).to_le_bytes());
            b.extend(t.as_bytes());
        };
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes()); // tensors
        b.extend(1u64.to_le_bytes()); // metadata entries
        s(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "llama");
        s(&mut b, "token_embd.weight");
        b.extend(2u32.to_le_bytes());
        b.extend(32u64.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(20u32.to_le_bytes()); // IQ4_NL
        b.extend(0u64.to_le_bytes());
        b.resize(b.len().next_multiple_of(32) + 4 * 18, 0);
        std::fs::write(&path, &b).map_err(|e| ModelError::io(&path, e))?;
        let err = load_gguf_lm(&path, &Device::Cpu, 32, None);
        assert!(
            matches!(&err, Err(ModelError::Unsupported(m)) if m.contains("IQ4_NL") && m.contains("token_embd.weight")),
            "{:?}",
            err.err()
        );
        let est = crate::memory::estimate_gguf(&path, 32, 1, 2);
        assert!(matches!(est, Err(ModelError::Unsupported(m)) if m.contains("IQ4_NL")));
        Ok(())
    }

    #[test]
    fn other_architectures_are_unsupported() -> Result<()> {
        use candle_core::quantized::gguf_file::{self, Value};
        let file = tempfile::NamedTempFile::new()
            .map_err(|e| ModelError::io(std::path::Path::new("tempfile"), e))?;
        let mut w =
            std::io::BufWriter::new(file.reopen().map_err(|e| ModelError::io(file.path(), e))?);
        let arch = Value::String("mamba".into());
        gguf_file::write(&mut w, &[("general.architecture", &arch)], &[])?;
        std::io::Write::flush(&mut w).map_err(|e| ModelError::io(file.path(), e))?;
        drop(w);
        let err = load_gguf_lm(file.path(), &Device::Cpu, 32, None);
        assert!(matches!(err, Err(ModelError::Unsupported(m)) if m.contains("mamba")));
        Ok(())
    }
}
