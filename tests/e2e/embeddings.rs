//! Embeddings over HTTP: similarity, batch equals single, base64, token input.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::*;

fn vectors(body: &Value) -> Vec<Vec<f32>> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[tokio::test]
async fn similar_sentences_are_close_and_unrelated_ones_far() {
    let s = server();
    let input = [
        "The cat sits on the mat",
        "A cat is sitting on a mat",
        "Quarterly revenue grew 12%",
    ];
    let (status, body) = post(
        s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": input}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "all-minilm-l6-v2");
    let v = vectors(&body);
    assert_eq!(v.len(), 3);
    assert!(v.iter().all(|x| x.len() == 384));
    for (i, d) in body["data"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            (d["object"].as_str(), d["index"].as_u64()),
            (Some("embedding"), Some(i as u64))
        );
    }
    let close = cosine(&v[0], &v[1]);
    let far = cosine(&v[0], &v[2]);
    println!("cosine similar={close:.4} unrelated={far:.4}");
    assert!(close > 0.9, "{close}");
    assert!(far < 0.3, "{far}");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 10);
    assert_eq!(
        body["usage"]["prompt_tokens"],
        body["usage"]["total_tokens"]
    );
}

#[tokio::test]
async fn a_batch_equals_single_calls() {
    let s = server();
    let input = [
        "Short.",
        "A somewhat longer sentence about a customer invoice that was paid late.",
        "Khách hàng đã thanh toán hóa đơn.",
    ];
    let (_, batch) = post(
        s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": input}),
    )
    .await;
    let batch = vectors(&batch);
    for (i, text) in input.iter().enumerate() {
        let (_, one) = post(
            s,
            "/v1/embeddings",
            json!({"model": "all-minilm-l6-v2", "input": text}),
        )
        .await;
        let one = &vectors(&one)[0];
        let diff = one
            .iter()
            .zip(&batch[i])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-5, "input {i}: max diff {diff}");
    }
}

#[tokio::test]
async fn base64_and_token_inputs() {
    let s = server();
    let (_, floats) = post(
        s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": "hello world"}),
    )
    .await;
    let (status, b64) = post(
        s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": "hello world", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(status, 200);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, vectors(&floats)[0]);
    let m = s
        .state
        .registry()
        .embedding("all-minilm-l6-v2", None)
        .await
        .unwrap();
    let ids: Vec<u32> = m
        .embedder
        .tokenize("hello world", nfai_models::InputKind::Query)
        .unwrap();
    let (status, by_ids) = post(
        s,
        "/v1/embeddings",
        json!({"model": "all-minilm-l6-v2", "input": [ids.clone(), ids]}),
    )
    .await;
    assert_eq!(status, 200, "{by_ids}");
    let v = vectors(&by_ids);
    assert!(cosine(&v[0], &vectors(&floats)[0]) > 0.99999);
    assert_eq!(v.len(), 2);
}

/// multilingual-e5-small over HTTP: a Vietnamese question finds its passage, `input_type`
/// selects e5's prefix, NFC and NFD spellings embed alike, and a bad `input_type` is named.
#[tokio::test]
async fn multilingual_e5_ranks_vietnamese_passages() {
    let s = server();
    let passages = [
        "Đơn hàng số 4521 sẽ được giao vào thứ Sáu tuần này.",
        "Khách hàng muốn đổi gói dịch vụ sang gói doanh nghiệp.",
        "Quarterly revenue grew 12% thanks to new enterprise deals.",
    ];
    let (status, body) = post(
        s,
        "/v1/embeddings",
        json!({"model": "multilingual-e5-small", "input": passages, "input_type": "passage"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let docs = vectors(&body);
    assert!(docs.iter().all(|v| v.len() == 384));

    let question = "Khi nào đơn hàng 4521 được giao?";
    let (status, body) = post(
        s,
        "/v1/embeddings",
        json!({"model": "e5-small", "input": question}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let q = &vectors(&body)[0];
    let scores: Vec<f32> = docs.iter().map(|d| cosine(q, d)).collect();
    println!("e5 scores {scores:?}");
    assert!(scores[0] > scores[1] && scores[0] > scores[2], "{scores:?}");

    // The same text as a passage is embedded with another prefix, so another vector.
    let (_, body) = post(
        s,
        "/v1/embeddings",
        json!({"model": "multilingual-e5-small", "input": question, "input_type": "passage"}),
    )
    .await;
    let as_passage = &vectors(&body)[0];
    assert!(
        cosine(q, as_passage) < 0.9999,
        "query and passage prefixes must differ"
    );

    // NFD (decomposed) Vietnamese embeds exactly as NFC.
    let nfd = "Khi nào đơn hàng 4521 được giao?";
    assert_ne!(nfd.as_bytes(), question.as_bytes());
    let (_, body) = post(
        s,
        "/v1/embeddings",
        json!({"model": "multilingual-e5-small", "input": nfd}),
    )
    .await;
    assert!(cosine(q, &vectors(&body)[0]) > 0.99999);

    let (status, body) = post(
        s,
        "/v1/embeddings",
        json!({"model": "multilingual-e5-small", "input": "x", "input_type": "summary"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_error(
        &body,
        "invalid_request_error",
        Some("input_type"),
        Some("invalid_value"),
    );
}
