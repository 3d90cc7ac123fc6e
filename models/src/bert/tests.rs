//! Tests of the BERT embedder. Most need all-MiniLM-L6-v2 under the model folder
//! (`nfai models fetch`); the config and pooling parsers are tested on files made here.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::Device;

use super::*;

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/all-minilm-l6-v2/reference.json"
);

fn model_dir() -> PathBuf {
    crate::default_model_dir().join("all-minilm-l6-v2")
}

fn load_from(dir: &Path) -> BertEmbedder {
    assert!(
        model_dir().join("model.safetensors").exists(),
        "all-MiniLM-L6-v2 is missing from {}: run `nfai models fetch` first",
        model_dir().display()
    );
    BertEmbedder::load(dir, &Device::Cpu).expect("load all-MiniLM-L6-v2")
}

fn model() -> &'static BertEmbedder {
    static MODEL: OnceLock<BertEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| load_from(&model_dir()))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const TARGET: &str = "The cat sits on the mat";
const OTHERS: [&str; 3] = [
    "Hi",
    "A considerably longer sentence that forces every shorter one in the batch to be padded \
     with many positions, so the attention mask and the pooling have real work to do.",
    "Quarterly revenue grew 12% on strong cloud demand",
];

#[test]
fn bert_model_facts() {
    let m = model();
    assert_eq!(m.dim(), 384);
    assert_eq!(m.max_tokens(), 256);
    assert_eq!(m.vocab_size(), 30522);
    assert_eq!(m.pooling(), Pooling::Mean);
    // 22.7M parameters in F32; qkv is fused, the unused pooler head is not loaded. With the
    // bf16 GEMM the linear layers' 10.6M weights take two bytes each, with the 8-bit tiles one
    // and a scale per 32.
    let bytes = m.weights_bytes();
    let want = match m.gemm() {
        "f32" => 85_000_000..92_000_000,
        "int8-avx512-vnni-tiles" => 54_000_000..61_000_000,
        _ => 65_000_000..72_000_000,
    };
    assert!(want.contains(&bytes), "{bytes} ({})", m.gemm());
    fn send_sync<T: Send + Sync>() {}
    send_sync::<BertEmbedder>();
}

#[test]
fn bert_similar_sentences_are_close() {
    let v = model()
        .embed_texts(&[
            "The cat sits on the mat",
            "A cat is sitting on a mat",
            "Quarterly revenue grew 12%",
        ])
        .unwrap();
    let close = cosine(&v[0], &v[1]);
    let far = cosine(&v[0], &v[2]);
    println!("cosine(cat, cat) = {close:.4} (sentence-transformers: 0.9726)");
    println!("cosine(cat, revenue) = {far:.4} (sentence-transformers: -0.0155)");
    assert!(close > 0.9, "{close}");
    assert!(far < 0.3, "{far}");
}

#[test]
fn bert_vectors_are_unit_length() {
    let v = model()
        .embed_texts(&["one", "two words", "", "Xin chào thế giới"])
        .unwrap();
    for e in &v {
        assert_eq!(e.len(), 384);
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert!(e.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn bert_padding_does_not_change_results() {
    let m = model();
    let alone = &m.embed_texts(&[TARGET]).unwrap()[0];
    let batch = [OTHERS[0], TARGET, OTHERS[1], OTHERS[2]];
    let ids: Vec<Vec<u32>> = batch.iter().map(|t| m.tokenize(t).unwrap()).collect();
    assert!(
        ids[2].len() > 2 * ids[1].len(),
        "the batch must pad the target"
    );
    let together = m.embed(&ids).unwrap();
    let diff = max_abs_diff(alone, &together[1]);
    println!("max |alone - in batch| = {diff:e}");
    assert!(diff < 1e-5, "{diff}");
    // Every other member is unaffected too, and the order is the input order.
    for (text, got) in batch.iter().zip(&together) {
        let single = &m.embed_texts(&[text]).unwrap()[0];
        assert!(max_abs_diff(single, got) < 1e-5, "{text}");
    }
}

#[test]
fn bert_split_passes_match_one_pass() {
    let m = model();
    let texts = [OTHERS[1], TARGET, OTHERS[0], OTHERS[2], TARGET, "short"];
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| m.tokenize(t).unwrap()).collect();
    let one_pass = m.embed(&ids).unwrap();
    let longest = ids.iter().map(Vec::len).max().unwrap();
    let split = m.embed_in_passes(&ids, longest).unwrap();
    for (a, b) in one_pass.iter().zip(&split) {
        assert!(max_abs_diff(a, b) < 1e-5);
    }
}

#[test]
fn bert_truncates_long_input() {
    let m = model();
    let text = (0..1000)
        .map(|i| format!("word{}", i % 17))
        .collect::<Vec<_>>()
        .join(" ");
    let ids = m.tokenize(&text).unwrap();
    assert_eq!(ids.len(), m.max_tokens());
    assert_eq!(ids.first(), m.tokenizer().token_to_id("[CLS]").as_ref());
    assert_eq!(ids.last(), m.tokenizer().token_to_id("[SEP]").as_ref());
    let short = m.tokenize("hello world").unwrap();
    assert_eq!(
        m.tokenizer().decode(&short, false).unwrap(),
        "[CLS] hello world [SEP]"
    );
    let v = m.embed(&[ids]).unwrap();
    let norm = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
}

#[test]
fn bert_rejects_bad_ids() {
    let m = model();
    let good = m.tokenize("fine").unwrap();
    let cases: [(Vec<u32>, &str); 3] = [
        (vec![101, 30522, 102], "token id 30522"),
        (Vec::new(), "no tokens"),
        (vec![100; m.max_tokens() + 1], "257 tokens"),
    ];
    for (bad, needle) in cases {
        let err = m.embed(&[good.clone(), bad]).unwrap_err();
        assert!(matches!(err, ModelError::Input(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("input 1") && msg.contains(needle), "{msg}");
    }
    assert!(m.embed(&[vec![u32::MAX]]).is_err());
    assert!(m.embed(&[]).unwrap().is_empty());
}

/// A copy of the model folder (weights linked) with its own pooling config.
fn with_pooling(config: &str) -> (tempfile::TempDir, BertEmbedder) {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["config.json", "tokenizer.json", "sentence_bert_config.json"] {
        std::fs::copy(model_dir().join(name), tmp.path().join(name)).unwrap();
    }
    std::os::unix::fs::symlink(
        model_dir().join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    std::fs::create_dir(tmp.path().join("1_Pooling")).unwrap();
    std::fs::write(tmp.path().join("1_Pooling/config.json"), config).unwrap();
    let m = load_from(tmp.path());
    (tmp, m)
}

#[test]
fn bert_every_pooling_ignores_padding() {
    for (key, mode) in [
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_max_tokens", Pooling::Max),
        ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
    ] {
        let (_tmp, m) = with_pooling(&format!("{{\"{key}\": true}}"));
        assert_eq!(m.pooling(), mode);
        let alone = &m.embed_texts(&[TARGET]).unwrap()[0];
        let together = m.embed_texts(&[OTHERS[1], TARGET]).unwrap();
        let diff = max_abs_diff(alone, &together[1]);
        assert!(diff < 1e-5, "{mode:?}: {diff}");
        let mean = &model().embed_texts(&[TARGET]).unwrap()[0];
        let from_mean = max_abs_diff(alone, mean);
        if mode == Pooling::MeanSqrtLen {
            // Only the scale differs from the mean, and L2 normalisation removes it.
            assert!(from_mean < 1e-5, "{from_mean}");
        } else {
            assert!(from_mean > 1e-3, "{mode:?} equals mean pooling");
        }
    }
}

#[test]
fn bert_matches_sentence_transformers() {
    let text = std::fs::read_to_string(REFERENCE)
        .unwrap_or_else(|e| panic!("{REFERENCE}: {e} (made by scripts/st_reference.py)"));
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let ours = model().embed_texts(&texts).unwrap();
    // 8-bit weights and activations (see `bert_reduced_precision_gemm_stays_close_to_f32`)
    // move an embedding by up to ~3e-4 in cosine distance; f32 and bf16 by under 2e-5.
    let least = if model().gemm() == "int8-avx512-vnni-tiles" {
        0.9995
    } else {
        0.9999
    };
    for (case, got) in cases.iter().zip(&ours) {
        let tokens = model().tokenize(case["text"].as_str().unwrap()).unwrap();
        assert_eq!(Some(tokens.len() as u64), case["tokens"].as_u64());
        let want: Vec<f32> = case["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let cos = cosine(got, &want);
        let diff = max_abs_diff(got, &want);
        let head: String = case["text"].as_str().unwrap().chars().take(40).collect();
        println!("reference {head:?}: cosine {cos:.7}, max abs diff {diff:.2e}");
        assert!(cos > least, "{head}: {cos} ({})", model().gemm());
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    if let Some(parent) = dir.join(name).parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn bert_pooling_config_parsing() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(Pooling::from_dir(tmp.path()).unwrap(), Pooling::Mean);
    let pooling = "1_Pooling/config.json";
    write(tmp.path(), pooling, r#"{"pooling_mode_cls_token": true}"#);
    assert_eq!(Pooling::from_dir(tmp.path()).unwrap(), Pooling::Cls);
    write(
        tmp.path(),
        pooling,
        r#"{"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}"#,
    );
    assert!(matches!(
        Pooling::from_dir(tmp.path()),
        Err(ModelError::Unsupported(_))
    ));
    write(tmp.path(), pooling, r#"{"pooling_mode_lasttoken": true}"#);
    assert!(matches!(
        Pooling::from_dir(tmp.path()),
        Err(ModelError::Unsupported(_))
    ));
    write(tmp.path(), pooling, r#"{"word_embedding_dimension": 8}"#);
    assert!(matches!(
        Pooling::from_dir(tmp.path()),
        Err(ModelError::Format(_))
    ));
}

#[test]
fn bert_config_validation() {
    let base = serde_json::json!({
        "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 16, "max_position_embeddings": 4
    });
    let parse = |patch: serde_json::Value| {
        let mut v = base.clone();
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        serde_json::from_value::<BertConfig>(v).unwrap().validate()
    };
    assert!(parse(serde_json::json!({})).is_ok());
    let unsupported = [
        serde_json::json!({"model_type": "roberta"}),
        serde_json::json!({"position_embedding_type": "relative_key"}),
        serde_json::json!({"hidden_act": "swish"}),
    ];
    for patch in unsupported {
        assert!(matches!(parse(patch), Err(ModelError::Unsupported(_))));
    }
    assert!(matches!(
        parse(serde_json::json!({"num_attention_heads": 3})),
        Err(ModelError::Format(_))
    ));
    assert!(matches!(
        parse(serde_json::json!({"hidden_size": 0})),
        Err(ModelError::Format(_))
    ));
}

#[test]
fn bert_missing_folder_is_an_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = BertEmbedder::load(&tmp.path().join("absent"), &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }), "{err}");
}

/// Throughput on ~20-token sentences; run with `-- --ignored --nocapture`.
#[test]
#[ignore = "timing only"]
fn bert_speed() {
    let m = model();
    let text = "The quarterly report shows that cloud revenue grew much faster than analysts \
                expected in every region";
    let ids = m.tokenize(text).unwrap();
    println!("{} tokens per sentence", ids.len());
    for batch in [1usize, 8, 32] {
        let inputs = vec![ids.clone(); batch];
        m.embed(&inputs).unwrap();
        let start = std::time::Instant::now();
        let mut done = 0usize;
        while start.elapsed().as_secs_f64() < 3.0 {
            m.embed(&inputs).unwrap();
            done += batch;
        }
        let rate = done as f64 / start.elapsed().as_secs_f64();
        println!("batch {batch:>2}: {rate:.0} embeddings/s");
    }
}

/// A copy of the model folder (weights linked) whose config uses `hidden_act` instead.
fn with_activation(dir: &Path, act: &str) {
    let config = std::fs::read_to_string(model_dir().join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config["hidden_act"] = act.into();
    for name in ["tokenizer.json", "sentence_bert_config.json"] {
        std::fs::copy(model_dir().join(name), dir.join(name)).unwrap();
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::os::unix::fs::symlink(
        model_dir().join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
}

#[test]
fn bert_packed_cpu_encoder_equals_candles_operations() {
    let texts = [OTHERS[1], TARGET, OTHERS[0], OTHERS[2]];
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = vec![(model_dir(), "gelu")];
    for act in ["gelu_new", "relu"] {
        let dir = tmp.path().join(act);
        std::fs::create_dir(&dir).unwrap();
        with_activation(&dir, act);
        cases.push((dir, act));
    }
    let (cls_dir, _) = with_pooling("{\"pooling_mode_cls_token\": true}");
    let (max_dir, _) = with_pooling("{\"pooling_mode_max_tokens\": true}");
    cases.push((cls_dir.path().to_path_buf(), "cls"));
    cases.push((max_dir.path().to_path_buf(), "max"));
    let f32_packed = Compute::Packed { bf16: false };
    for (dir, name) in cases {
        let packed = BertEmbedder::load_as(&dir, &Device::Cpu, f32_packed).unwrap();
        assert!(matches!(packed.net, Net::Cpu(_)), "{name}");
        assert_eq!(packed.gemm(), "f32", "{name}");
        let padded = BertEmbedder::load_as(&dir, &Device::Cpu, Compute::Candle).unwrap();
        assert!(matches!(padded.net, Net::Candle(_)), "{name}");
        let a = packed.embed_texts(&texts).unwrap();
        let b = padded.embed_texts(&texts).unwrap();
        for (x, y) in a.iter().zip(&b) {
            let diff = max_abs_diff(x, y);
            assert!(diff < 1e-5, "{name}: {diff}");
        }
        assert_eq!(packed.weights_bytes, padded.weights_bytes, "{name}");
    }
}

/// Records a CRM might search, and queries with the record each should find first.
const CORPUS: [&str; 8] = [
    "Invoice 4471 for ACME Corp is overdue by thirty days",
    "The customer asked to move the onboarding call to next Tuesday",
    "Quarterly revenue grew 12% on strong cloud demand",
    "Please reset my password, I cannot log in to the portal",
    "Shipping to Germany takes five business days",
    "The sales team closed three enterprise deals this week",
    "Our refund policy allows returns within 30 days of purchase",
    "The cat sits on the mat",
];
const QUERIES: [(&str, usize); 4] = [
    ("unpaid bill from ACME", 0),
    ("how do I get my money back", 6),
    ("login problems", 3),
    ("delivery time to Europe", 4),
];

/// Where the CPU has AVX-512 BF16, the default encoder rounds its GEMMs' operands to bf16;
/// on other CPUs with nfai's AVX-512 kernels it quantises them to 8 bits. Either way every
/// embedding stays within 1e-3 of the f32 encoder's in cosine distance, and searches rank the
/// corpus the same way.
#[test]
fn bert_reduced_precision_gemm_stays_close_to_f32() {
    let bf16 = model();
    if bf16.gemm() == "f32" {
        eprintln!(
            "skipped: this CPU or build has no reduced-precision GEMM ({})",
            cpu_gemm()
        );
        return;
    }
    let f32m =
        BertEmbedder::load_as(&model_dir(), &Device::Cpu, Compute::Packed { bf16: false }).unwrap();
    assert!(bf16.weights_bytes() < f32m.weights_bytes());
    let texts: Vec<&str> = CORPUS
        .iter()
        .chain(QUERIES.iter().map(|q| &q.0))
        .copied()
        .collect();
    let (a, b) = (
        bf16.embed_texts(&texts).unwrap(),
        f32m.embed_texts(&texts).unwrap(),
    );
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| cosine(x, y))
        .fold(1f32, f32::min);
    println!("{} vs f32: lowest cosine {worst:.6}", bf16.gemm());
    assert!(worst > 0.999, "{worst}");
    let ranking = |vs: &[Vec<f32>], q: usize| {
        let mut order: Vec<usize> = (0..CORPUS.len()).collect();
        let sim = |i: usize| cosine(&vs[CORPUS.len() + q], &vs[i]);
        order.sort_by(|&i, &j| sim(j).total_cmp(&sim(i)));
        order
    };
    for (q, (query, want)) in QUERIES.iter().enumerate() {
        let (ra, rb) = (ranking(&a, q), ranking(&b, q));
        assert_eq!(rb[0], *want, "f32: {query}");
        assert_eq!(ra[..3], rb[..3], "{query}");
    }
}
