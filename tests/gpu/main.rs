//! The model cache on a real GPU (built with `--features cuda`, run where one is): synthetic
//! Llama-3-8B-wide models loaded past an 8 GB VRAM budget, LRU eviction, and the VRAM it frees
//! as the driver reports it. Every test is ignored by default; on a GPU machine:
//! `cargo test -p nfai-tests --features cuda --test gpu -- --ignored --test-threads 1`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test, reported where it happens"
)]

use nfai_tests::common;

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::quantized::GgmlDType;
use nfai_models::synth::{SynthShape, write_synthetic};
use serde_json::Value;

const TOKEN: &str = "gpu-test-token";
const GIB: u64 = 1 << 30;

fn free_vram() -> u64 {
    let dev = nfai_models::device::by_name("cuda:0").unwrap();
    nfai_models::device::gpu_memory(&dev).unwrap().unwrap().0
}

/// Three models of about 3 GB (Llama-3-8B width, 20 layers, Q4_K) in `<dir>/<id>/model.gguf`.
fn write_models(dir: &Path) -> Vec<String> {
    let mut shape = SynthShape::preset("llama3-8b").unwrap();
    shape.layers = 20;
    (0..3)
        .map(|i| {
            let id = format!("synth-{i}");
            std::fs::create_dir_all(dir.join(&id)).unwrap();
            let path = dir.join(&id).join("model.gguf");
            write_synthetic(&path, &id, &shape, GgmlDType::Q4K, i, |_, _| {}).unwrap();
            id
        })
        .collect()
}

async fn admin(s: &common::Server, method: &str, path: &str) -> (u16, Value) {
    let url = format!("{}{path}", s.base);
    let c = common::client();
    let req = if method == "GET" {
        c.get(url)
    } else {
        c.post(url)
    };
    let res = req.bearer_auth(TOKEN).send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

async fn state(s: &common::Server, id: &str) -> String {
    let (_, list) = admin(s, "GET", "/admin/models").await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .map(|m| m["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Waits until the driver reports at least `want` bytes free (freeing follows the engine
/// thread's exit).
async fn wait_free(want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let free = free_vram();
        if free >= want || Instant::now() > deadline {
            return free;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an NVIDIA GPU with 10 GB free"]
async fn gpu_lru_eviction_under_an_8_gb_budget_frees_vram() {
    let dir = std::env::temp_dir().join(format!("nfai-gpu-{}", std::process::id()));
    let ids = write_models(&dir);
    let mut toml = format!(
        "serve = {ids:?}\n[cache]\npreload = []\nvram_budget_bytes = {}\nmax_loaded_models = 3\n",
        8 * GIB
    );
    for id in &ids {
        toml.push_str(&format!(
            "[[models]]\nid = \"{id}\"\nkind = \"chat\"\nformat = \"gguf\"\npath = \"model.gguf\"\n\
             device = \"cuda:0\"\ncontext_length = 512\nmax_concurrent = 1\n"
        ));
    }
    let mut args = common::config_args("gpu-evict", &toml);
    args.common.model_dir = Some(dir.clone());
    args.admin_token = Some(TOKEN.parse().unwrap());
    let s = common::start_with(args);

    let start_free = free_vram();
    for id in &ids[..2] {
        let (status, body) = admin(&s, "POST", &format!("/admin/models/{id}/load")).await;
        assert_eq!(status, 200, "{body}");
    }
    let two_free = free_vram();
    let one = (start_free - two_free) / 2;
    println!(
        "two models take {} MiB of VRAM ({} MiB each)",
        (start_free - two_free) >> 20,
        one >> 20
    );
    assert!(one > 2 * GIB, "a model took only {one} bytes");

    // The third does not fit beside them: the least recently used one goes.
    let (status, body) = admin(&s, "POST", &format!("/admin/models/{}/load", ids[2])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(state(&s, &ids[0]).await, "unloaded");
    assert_eq!(state(&s, &ids[1]).await, "ready");
    assert_eq!(state(&s, &ids[2]).await, "ready");
    let three_free = wait_free(two_free.saturating_sub(one / 2)).await;
    println!(
        "after loading the third: {} MiB free (before: {} MiB)",
        three_free >> 20,
        two_free >> 20
    );
    assert!(
        three_free + one / 2 >= two_free,
        "the evicted model's VRAM came back"
    );

    let (_, memory) = admin(&s, "GET", "/admin/memory").await;
    let gpu = memory["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "cuda:0")
        .cloned()
        .unwrap();
    assert!(gpu["used_bytes"].as_u64().unwrap() <= 8 * GIB, "{gpu}");

    // Unloading returns the VRAM.
    let (status, _) = admin(&s, "POST", &format!("/admin/models/{}/unload", ids[1])).await;
    assert_eq!(status, 200);
    let after = wait_free(three_free + one * 9 / 10).await;
    println!("after unloading one: {} MiB free", after >> 20);
    assert!(
        after >= three_free + one * 9 / 10,
        "{after} < {three_free} + {one}"
    );

    // Still a working model: a completion from the remaining one.
    let (status, body) = common::post(
        &s,
        "/v1/completions",
        serde_json::json!({"model": ids[2], "prompt": "hello", "max_tokens": 4, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}
