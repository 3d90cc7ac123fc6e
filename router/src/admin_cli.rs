//! `nfai models list|load|unload|pin|unpin`: the admin API from the command line, with table
//! output. `load` shows the model's state until it is Ready.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::config::{AdminArgs, ModelsCommand};

/// Runs one admin command against `args.url`.
pub async fn run(cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::Fetch(_) | ModelsCommand::Synth(_) => {
            anyhow::bail!("this command does not talk to a server")
        }
        ModelsCommand::List(a) => {
            let list = call(&a, "GET", "/admin/models", None).await?;
            print_table(&list["data"]);
        }
        ModelsCommand::Load {
            admin,
            id,
            keep_alive,
            pin,
        } => {
            let mut body = json!({ "pin": pin });
            if let Some(k) = keep_alive {
                body["keep_alive"] = json!(k);
            }
            let path = format!("/admin/models/{id}/load");
            let started = Instant::now();
            let request = call(&admin, "POST", &path, Some(body));
            tokio::pin!(request);
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let done = loop {
                tokio::select! {
                    r = &mut request => break r?,
                    _ = tick.tick() => {
                        if let Ok(list) = call(&admin, "GET", "/admin/models", None).await {
                            let state = list["data"].as_array().and_then(|d| d.iter().find(|m| m["id"] == id.as_str()))
                                .and_then(|m| m["state"].as_str()).unwrap_or("?").to_string();
                            eprint!("\r{id}: {state} ({:.1} s)   ", started.elapsed().as_secs_f64());
                        }
                    }
                }
            };
            eprintln!(
                "\r{id}: ready in {:.1} s          ",
                started.elapsed().as_secs_f64()
            );
            print_table(&json!([done]));
        }
        ModelsCommand::Unload { admin, id, force } => {
            let m = call(
                &admin,
                "POST",
                &format!("/admin/models/{id}/unload"),
                Some(json!({ "force": force })),
            )
            .await?;
            print_table(&json!([m]));
        }
        ModelsCommand::Pin { admin, id } => {
            print_table(&json!([call(
                &admin,
                "POST",
                &format!("/admin/models/{id}/pin"),
                None
            )
            .await?]));
        }
        ModelsCommand::Unpin { admin, id } => {
            print_table(&json!([call(
                &admin,
                "POST",
                &format!("/admin/models/{id}/unpin"),
                None
            )
            .await?]));
        }
    }
    Ok(())
}

async fn call(
    a: &AdminArgs,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", a.url.trim_end_matches('/'));
    let mut req = if method == "GET" {
        client.get(&url)
    } else {
        client.post(&url)
    };
    if let Some(t) = &a.token {
        req = req.bearer_auth(t.expose());
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req
        .send()
        .await
        .with_context(|| format!("cannot reach nfai at {}", a.url))?;
    let status = res.status();
    let value: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = value["error"]["message"].as_str().unwrap_or("no message");
        anyhow::bail!("{status}: {msg}");
    }
    Ok(value)
}

fn mib(v: &Value) -> String {
    v.as_u64().map_or("-".to_string(), |b| {
        format!("{:.0} MiB", b as f64 / 1048576.0)
    })
}

fn print_table(models: &Value) {
    println!(
        "{:<22} {:<10} {:<6} {:>10} {:>10} {:<6} {:<8} {:>9} {:>8}",
        "MODEL", "STATE", "DEVICE", "ESTIMATE", "ACTUAL", "PINNED", "KEEP", "IN-FLIGHT", "SERVED"
    );
    for m in models.as_array().into_iter().flatten() {
        println!(
            "{:<22} {:<10} {:<6} {:>10} {:>10} {:<6} {:<8} {:>9} {:>8}",
            m["id"].as_str().unwrap_or("?"),
            m["state"].as_str().unwrap_or("?"),
            m["device"].as_str().unwrap_or("?"),
            mib(&m["estimated_bytes"]),
            mib(&m["actual_bytes"]),
            m["pinned"].as_bool().unwrap_or(false),
            m["keep_alive"].as_str().unwrap_or("?"),
            m["in_flight"].as_u64().unwrap_or(0),
            m["requests_served"].as_u64().unwrap_or(0),
        );
        if let Some(e) = m["last_error"].as_str() {
            println!("    last error: {e}");
        }
    }
}
