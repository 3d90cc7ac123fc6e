//! Llama-family tests on tiny synthetic files: batch independence, cache continuation, the
//! RoPE styles and scalings, and refusals that name what is missing.

use candle_core::Device;
use candle_core::quantized::GgmlDType;

use super::*;
use crate::synth::{SynthShape, write_synthetic};

fn tiny(name: &str, dtype: GgmlDType) -> Result<(tempfile::TempDir, Llama)> {
    let dir = tempfile::tempdir().map_err(|e| ModelError::io(std::path::Path::new("tmp"), e))?;
    let path = dir.path().join(format!("{name}.gguf"));
    let shape = SynthShape::preset(name).ok_or_else(|| ModelError::Input(name.into()))?;
    write_synthetic(&path, name, &shape, dtype, 11, |_, _| {})?;
    let model = Llama::load(&GgufFile::open(&path)?, &Device::Cpu, 256)?;
    Ok((dir, model))
}

fn logits(model: &Llama, tokens: &[u32], cache: &mut SeqKvCache) -> Result<Vec<f32>> {
    let out = model.forward(&mut [BatchEntry { tokens, cache }])?;
    Ok(out.flatten_all()?.to_vec1::<f32>()?)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn a_sequence_does_not_depend_on_its_batch() -> Result<()> {
    for name in ["llama-tiny", "qwen2-tiny", "qwen3-tiny"] {
        let (_dir, model) = tiny(name, GgmlDType::Q4_1)?;
        let a: Vec<u32> = (10..30).collect();
        let b: Vec<u32> = (100..103).collect();
        let alone_a = logits(&model, &a, &mut model.new_cache())?;
        let alone_b = logits(&model, &b, &mut model.new_cache())?;
        let (mut ca, mut cb) = (model.new_cache(), model.new_cache());
        let both = model.forward(&mut [
            BatchEntry {
                tokens: &a,
                cache: &mut ca,
            },
            BatchEntry {
                tokens: &b,
                cache: &mut cb,
            },
        ])?;
        let both = both.to_vec2::<f32>()?;
        assert_eq!(both[0], alone_a, "{name}: entry 0");
        assert_eq!(both[1], alone_b, "{name}: entry 1");
        assert_eq!((ca.len(), cb.len()), (20, 3));
    }
    Ok(())
}

/// Decoding token by token from a cache gives what one prefill of the whole prompt gives, up
/// to the f16 rounding of short-chunk attention.
#[test]
fn decoding_from_the_cache_continues_the_prefill() -> Result<()> {
    for name in ["llama-tiny", "qwen2-tiny", "qwen3-tiny"] {
        let (_dir, model) = tiny(name, GgmlDType::Q8_0)?;
        let prompt: Vec<u32> = (0..12).map(|i| 7 + i * 31 % 400).collect();
        let whole = logits(&model, &prompt, &mut model.new_cache())?;
        let mut cache = model.new_cache();
        logits(&model, &prompt[..8], &mut cache)?;
        let mut last = Vec::new();
        for t in &prompt[8..] {
            last = logits(&model, std::slice::from_ref(t), &mut cache)?;
        }
        assert_eq!(cache.len(), prompt.len());
        let scale = whole.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max_diff(&whole, &last);
        assert!(
            d <= 0.02 * scale.max(1.0),
            "{name}: {d} (logits up to {scale})"
        );
    }
    Ok(())
}

#[test]
fn families_differ_where_they_should() -> Result<()> {
    let (_d1, llama) = tiny("llama-tiny", GgmlDType::Q8_0)?;
    let (_d2, qwen2) = tiny("qwen2-tiny", GgmlDType::Q8_0)?;
    let (_d3, qwen3) = tiny("qwen3-tiny", GgmlDType::Q8_0)?;
    assert_eq!(llama.config().family, Family::Llama);
    assert!(!llama.config().family.neox_rope());
    assert!(qwen2.config().family.qkv_bias() && qwen2.config().family.neox_rope());
    assert!(qwen3.config().family.qk_norm());
    assert_eq!(llama.info().architecture, "llama");
    // 2 layers × 2 KV heads × 32 × (K and V) × 2 bytes (f16).
    assert_eq!(llama.info().kv_bytes_per_token, 2 * 2 * 32 * 2 * 2);
    assert_eq!(qwen3.info().context_length, 256);
    Ok(())
}

/// Llama's RoPE rotates adjacent pairs, NeoX's halves: the same angles, applied to different
/// pairs of values.
#[test]
fn rope_styles_pair_different_values() -> Result<()> {
    let dev = Device::Cpu;
    let table = RopeTable::new(10_000., 1., 4, 8, &dev)?;
    let (cos, sin) = table.rows(&Tensor::new(&[3u32], &dev)?)?;
    let x = Tensor::new(&[[[1f32, 2., 3., 4.]]], &dev)?;
    let pairs = crate::layers::apply_rope_pairs(&x, &cos, &sin)?.flatten_all()?;
    let neox = crate::layers::apply_rope(&x, &cos, &sin)?.flatten_all()?;
    let (c, s) = (3f32.cos(), 3f32.sin());
    let p = pairs.to_vec1::<f32>()?;
    assert!((p[0] - (c - 2. * s)).abs() < 1e-6 && (p[1] - (s + 2. * c)).abs() < 1e-6);
    let n = neox.to_vec1::<f32>()?;
    assert!((n[0] - (c - 3. * s)).abs() < 1e-6 && (n[2] - (s + 3. * c)).abs() < 1e-6);
    // Frequency factors divide the angle (Llama 3's scaling).
    let scaled = RopeTable::with_factors(10_000., 1., Some(&[2.0, 1.0]), 4, 8, &dev)?;
    let (cos2, _) = scaled.rows(&Tensor::new(&[3u32], &dev)?)?;
    assert!((cos2.to_vec2::<f32>()?[0][0] - 1.5f32.cos()).abs() < 1e-6);
    assert!(RopeTable::with_factors(10_000., 1., Some(&[1.0]), 4, 8, &dev).is_err());
    Ok(())
}

#[test]
fn unknown_rope_scaling_is_refused_by_name() -> Result<()> {
    use candle_core::quantized::gguf_file::{self, Value};
    let dir = tempfile::tempdir().map_err(|e| ModelError::io(std::path::Path::new("tmp"), e))?;
    let path = dir.path().join("yarn.gguf");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&path).map_err(|e| ModelError::io(&path, e))?,
    );
    let values = [
        ("general.architecture", Value::String("llama".into())),
        ("llama.embedding_length", Value::U32(64)),
        ("llama.block_count", Value::U32(1)),
        ("llama.feed_forward_length", Value::U32(64)),
        ("llama.attention.head_count", Value::U32(2)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.context_length", Value::U32(64)),
        ("llama.rope.scaling.type", Value::String("yarn".into())),
        ("llama.rope.scaling.factor", Value::F32(4.0)),
    ];
    let refs: Vec<(&str, &Value)> = values.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut w, &refs, &[])?;
    std::io::Write::flush(&mut w).map_err(|e| ModelError::io(&path, e))?;
    drop(w);
    let err = LlamaConfig::from_gguf(&GgufFile::open(&path)?);
    assert!(matches!(err, Err(ModelError::Unsupported(m)) if m.contains("yarn")));
    Ok(())
}
