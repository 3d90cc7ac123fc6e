//! Tests of the GGUF tokenizers: merges from scores, byte fallback, byte-level BPE, and the
//! real Gemma vocabulary against llama.cpp's ids.
use candle_core::quantized::gguf_file::{self, Value};
use serde::Deserialize;

use super::*;
use crate::gemma3::testutil::{TinySpec, write_tiny_gemma};

/// A GGUF file holding only `meta`.
fn write_metadata(meta: &[(&str, Value)]) -> Result<tempfile::NamedTempFile> {
    let file = tempfile::NamedTempFile::new()
        .map_err(|e| ModelError::io(std::path::Path::new("tempfile"), e))?;
    let out = file.reopen().map_err(|e| ModelError::io(file.path(), e))?;
    let mut w = std::io::BufWriter::new(out);
    let refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut w, &refs, &[])?;
    std::io::Write::flush(&mut w).map_err(|e| ModelError::io(file.path(), e))?;
    Ok(file)
}

fn tiny() -> Result<TextTokenizer> {
    let file = write_tiny_gemma(&TinySpec {
        layers: 1,
        ..TinySpec::default()
    })?;
    from_gguf(&GgufFile::open(file.path())?)
}

#[test]
fn spm_merges_follow_scores_and_fall_back_to_bytes() -> Result<()> {
    let t = tiny()?;
    let id = |s: &str| t.token_to_id(s).unwrap_or(u32::MAX);
    // "bc" (-1) beats "ab" (-3), then "a"+"bc" forms "abc" (-2).
    assert_eq!(t.encode("abc", true)?, vec![2, id("abc")]);
    // "ab" (-3) beats "▁a" (-4); a space is "▁" since add_space_prefix is false.
    assert_eq!(t.encode("ab a", true)?, vec![2, id("ab"), id("\u{2581}a")]);
    // Characters outside the vocabulary become their UTF-8 bytes.
    assert_eq!(t.encode("é", false)?, vec![id("<0xC3>"), id("<0xA9>")]);
    // Control tokens are split out as specials; user-defined ones always.
    assert_eq!(
        t.encode("a<start_of_turn>\n\nb", false)?,
        vec![id("a"), id("<start_of_turn>"), id("\n\n"), id("b")]
    );
    assert_eq!(
        t.decode(&t.encode("ab a é\n\nc", true)?, true)?,
        "ab a é\n\nc"
    );
    assert_eq!(
        t.decode(&[2, id("a"), id("<start_of_turn>"), id("b")], false)?,
        "<bos>a<start_of_turn>b"
    );
    assert_eq!(t.decode(&[2, id("a"), id("<end_of_turn>")], true)?, "a");
    assert_eq!(t.bos_id(), Some(2));
    assert_eq!(t.eos_ids(), &[1, id("<end_of_turn>")]);
    Ok(())
}

#[test]
fn byte_level_bpe_from_merges() -> Result<()> {
    let tokens: Vec<&str> = vec![
        "<|endoftext|>",
        "h",
        "e",
        "l",
        "o",
        "w",
        "r",
        "d",
        "\u{120}",
        "he",
        "ll",
        "hell",
        "hello",
        "\u{120}w",
        "or",
        "\u{120}wor",
        "\u{120}world",
        "!",
    ];
    let merges = [
        "h e",
        "l l",
        "he ll",
        "hell o",
        "\u{120} w",
        "o r",
        "\u{120}w or",
    ];
    let mut types = vec![TOKEN_NORMAL; tokens.len()];
    types[0] = TOKEN_CONTROL;
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("test".into())),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("default".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.iter().map(|t| Value::String((*t).into())).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.iter().map(|t| Value::I32(*t as i32)).collect()),
        ),
        (
            "tokenizer.ggml.merges",
            Value::Array(merges.iter().map(|m| Value::String((*m).into())).collect()),
        ),
        ("tokenizer.ggml.eos_token_id", Value::U32(0)),
    ];
    let file = write_metadata(&meta)?;
    let t = from_gguf(&GgufFile::open(file.path())?)?;
    // Merges apply by rank: "Ġw", "or", then "Ġwor"; "l d" is not a merge.
    let ids = t.encode("hello world!<|endoftext|>", true)?;
    assert_eq!(ids, vec![12, 15, 3, 7, 17, 0]);
    assert_eq!(t.decode(&ids, true)?, "hello world!");
    assert_eq!(t.eos_ids(), &[0]);
    assert_eq!(t.bos_id(), None);
    Ok(())
}

#[test]
fn unsupported_model_is_reported() -> Result<()> {
    let meta = [
        ("tokenizer.ggml.model", Value::String("bert".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(vec![Value::String("a".into())]),
        ),
    ];
    let file = write_metadata(&meta)?;
    let err = from_gguf(&GgufFile::open(file.path())?);
    assert!(matches!(err, Err(ModelError::Unsupported(m)) if m.contains("bert")));
    Ok(())
}

#[derive(Deserialize)]
struct TokenizeFixture {
    cases: Vec<TokenizeCase>,
}

#[derive(Deserialize)]
struct TokenizeCase {
    text: String,
    ids: Vec<u32>,
}

/// The real Gemma 3 tokenizer, and how long building it took.
fn real() -> Result<(TextTokenizer, std::time::Duration)> {
    let g = GgufFile::open(&crate::gemma3::real_tests::real_model_path())?;
    let start = std::time::Instant::now();
    let t = from_gguf(&g)?;
    Ok((t, start.elapsed()))
}

#[test]
fn real_gemma_known_ids_and_build_time() -> Result<()> {
    let (t, took) = real()?;
    println!(
        "Gemma 3 tokenizer built in {:.0} ms",
        took.as_secs_f64() * 1e3
    );
    assert_eq!(t.vocab_size(), 262_144);
    assert_eq!(
        t.encode("Hello, world!", true)?,
        vec![2, 9259, 236764, 1902, 236888]
    );
    assert_eq!(
        t.encode(
            "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
            false
        )?,
        vec![105, 2364, 107, 9259, 106, 107, 105, 4368, 107]
    );
    assert_eq!(t.encode("", true)?, vec![2]);
    assert_eq!(t.encode("   leading", true)?, vec![2, 139, 26016]);
    assert_eq!(t.eos_ids(), &[1, 106]);
    Ok(())
}

#[test]
fn real_gemma_matches_llama_cpp_tokenize_fixture() -> Result<()> {
    let fx: TokenizeFixture =
        serde_json::from_str(&crate::gemma3::fixture_tests::fixture("tokenize.json"))
            .map_err(|e| ModelError::Format(format!("tokenize.json: {e}")))?;
    let (t, _) = real()?;
    let mut wrong = Vec::new();
    for case in &fx.cases {
        let ids = t.encode(&case.text, true)?;
        if ids != case.ids {
            wrong.push(format!(
                "{:?}: got {ids:?}, llama.cpp {:?}",
                case.text, case.ids
            ));
        }
        let back = t.decode(case.ids.get(1..).unwrap_or_default(), false)?;
        if back != case.text {
            wrong.push(format!("{:?}: decodes back as {back:?}", case.text));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    println!("{} tokenizer cases equal llama.cpp's", fx.cases.len());
    Ok(())
}
