use candle_core::Device;
use candle_core::quantized::GgmlDType;

use super::*;
use crate::lm::BatchEntry;

fn small() -> SynthShape {
    SynthShape {
        arch: SynthArch::Gemma3,
        hidden: 256,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 64,
        ffn: 512,
        vocab: 512,
        context: 128,
        untied_output: true,
    }
}

fn write(
    shape: &SynthShape,
    dtype: GgmlDType,
    seed: u64,
) -> (tempfile::TempDir, std::path::PathBuf, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.gguf");
    let mut last = (0, 1);
    let size = write_synthetic(&path, "small", shape, dtype, seed, |done, all| {
        last = (done, all)
    })
    .unwrap();
    assert_eq!(last.0, last.1, "progress reaches the total");
    (dir, path, size)
}

#[test]
fn writes_a_loadable_model_of_the_shape() -> Result<()> {
    for dtype in [
        GgmlDType::Q4K,
        GgmlDType::Q8_0,
        GgmlDType::Q4_0,
        GgmlDType::Q6K,
    ] {
        let shape = small();
        let (_dir, path, size) = write(&shape, dtype, 7);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        let g = crate::GgufFile::open(&path)?;
        assert_eq!(g.usize("gemma3.embedding_length")?, 256);
        assert_eq!(g.string_array("tokenizer.ggml.tokens")?.len(), 512);

        let lm = crate::load_gguf_lm(&path, &Device::Cpu, 64, None)?;
        let ids = lm
            .tokenizer
            .encode("synthetic weights, real shapes", true)?;
        assert!(ids.len() > 3);
        let mut cache = lm.model.new_cache();
        let logits = lm.model.forward(&mut [BatchEntry {
            tokens: &ids,
            cache: &mut cache,
        }])?;
        assert_eq!(logits.dims(), &[1, 512]);
        let v: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        assert!(v.iter().all(|x| x.is_finite()), "{dtype:?}: finite logits");
        let spread =
            v.iter().cloned().fold(f32::MIN, f32::max) - v.iter().cloned().fold(f32::MAX, f32::min);
        assert!(spread > 1e-3, "{dtype:?}: logits vary ({spread})");
    }
    Ok(())
}

#[test]
fn the_seed_decides_the_bytes() {
    let shape = small();
    let (_a, pa, _) = write(&shape, GgmlDType::Q4K, 1);
    let (_b, pb, _) = write(&shape, GgmlDType::Q4K, 1);
    let (_c, pc, _) = write(&shape, GgmlDType::Q4K, 2);
    let (a, b, c) = (
        std::fs::read(pa).unwrap(),
        std::fs::read(pb).unwrap(),
        std::fs::read(pc).unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(a.len(), c.len());
    assert_ne!(a, c);
}

#[test]
fn preset_sizes_match_the_real_models() {
    // Llama 3 8B at Q4_K: 8.03 B parameters at 4.5 bits.
    let b = SynthShape::preset("llama3-8b")
        .unwrap()
        .weight_bytes(GgmlDType::Q4K);
    assert!((4_400_000_000..4_600_000_000).contains(&b), "{b}");
    for name in SynthShape::PRESETS {
        assert!(SynthShape::preset(name).is_some(), "{name}");
    }
    assert!(SynthShape::preset("gpt-5").is_none());
    assert_eq!(parse_dtype("Q4_K_M"), Some(GgmlDType::Q4K));
    assert_eq!(parse_dtype("f32"), None);
}

#[test]
fn rows_that_do_not_fill_k_quant_blocks_fall_back_to_q8_0() -> Result<()> {
    // Gemma 3 270M's 640-wide rows, as in the real file.
    let shape = SynthShape {
        hidden: 640,
        heads: 4,
        head_dim: 160,
        ..small()
    };
    let (_dir, path, _) = write(&shape, GgmlDType::Q4K, 3);
    let g = crate::GgufFile::open(&path)?;
    let t = g.tensor("blk.0.attn_q.weight", &Device::Cpu)?;
    assert_eq!(t.dtype(), GgmlDType::Q8_0);
    let down = g.tensor("blk.0.ffn_down.weight", &Device::Cpu)?;
    assert_eq!(down.dtype(), GgmlDType::Q4K, "512-wide rows stay Q4_K");
    crate::load_gguf_lm(&path, &Device::Cpu, 64, None)?;
    Ok(())
}

#[test]
fn rows_that_fill_no_block_are_refused() {
    let shape = SynthShape {
        hidden: 40,
        heads: 1,
        kv_heads: 1,
        head_dim: 40,
        ..small()
    };
    let dir = tempfile::tempdir().unwrap();
    let err = write_synthetic(
        &dir.path().join("x.gguf"),
        "x",
        &shape,
        GgmlDType::Q4K,
        0,
        |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("blocks"), "{err}");
}

/// Every tiny Llama-family preset writes a file that the loader runs: finite logits for a
/// prompt, the declared architecture, and its own tensors (Qwen2 biases, Qwen3 Q/K norms).
#[test]
fn tiny_llama_family_presets_load_and_run() -> Result<()> {
    for (name, arch) in [
        ("llama-tiny", "llama"),
        ("qwen2-tiny", "qwen2"),
        ("qwen3-tiny", "qwen3"),
    ] {
        let shape = SynthShape::preset(name).ok_or_else(|| ModelError::Input(name.into()))?;
        assert_eq!(shape.arch.name(), arch);
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_1, GgmlDType::Q4_0] {
            let (_dir, path, size) = write(&shape, dtype, 3);
            assert_eq!(size, std::fs::metadata(&path).unwrap().len());
            let g = crate::GgufFile::open(&path)?;
            assert_eq!(g.has_tensor("blk.0.attn_q.bias"), arch == "qwen2");
            assert_eq!(g.has_tensor("blk.1.attn_k_norm.weight"), arch == "qwen3");
            assert!(!g.has_tensor("blk.0.post_ffw_norm.weight"));
            let lm = crate::load_gguf_lm(&path, &Device::Cpu, 64, None)?;
            assert_eq!(lm.model.info().architecture, arch);
            let ids = lm.tokenizer.encode("abc abc", true)?;
            let mut cache = lm.model.new_cache();
            let logits = lm.model.forward(&mut [BatchEntry {
                tokens: &ids,
                cache: &mut cache,
            }])?;
            let v = logits.flatten_all()?.to_vec1::<f32>()?;
            assert_eq!(v.len(), shape.vocab);
            assert!(v.iter().all(|x| x.is_finite()), "{name} {dtype:?}");
        }
    }
    Ok(())
}
