#!/usr/bin/env python3
"""Warm request latency over HTTP against a running nfai (stdlib only).

Sends N sequential requests of the shape the CRM makes most (a ~20-token prompt, 32 new tokens,
temperature 0, ignore_eos so every request generates exactly 32 tokens) after W warm-up
requests, and prints p50/p95/min/max end-to-end latency. Also measures embeddings.

    python3 benches/scripts/http_latency.py --base http://127.0.0.1:8080 -n 30
"""

import argparse
import json
import statistics
import time
import urllib.request

PROMPT = "Write a short, friendly reply to a customer who asked when invoice 1234 will be paid."


def post(base, path, body):
    req = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as res:
        data = json.loads(res.read())
    return time.perf_counter() - start, data


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def run(name, fn, n, warmup):
    for _ in range(warmup):
        fn()
    times = [fn() for _ in range(n)]
    ms = [t * 1000 for t in times]
    print(
        f"{name:<34} n={n:<3} p50={pct(ms, 50):7.1f} ms  p95={pct(ms, 95):7.1f} ms  "
        f"min={min(ms):7.1f}  max={max(ms):7.1f}  mean={statistics.mean(ms):7.1f}"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="http://127.0.0.1:8080")
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()

    completion = {
        "model": "gemma-3-270m",
        "prompt": PROMPT,
        "max_tokens": 32,
        "temperature": 0,
        "ignore_eos": True,
    }
    _, first = post(a.base, "/v1/completions", completion)
    print(f"prompt tokens: {first['usage']['prompt_tokens']}, completion tokens: {first['usage']['completion_tokens']}")
    run("completion (prompt ~20 tok, 32 new)", lambda: post(a.base, "/v1/completions", completion)[0], a.n, a.warmup)
    chat = {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": "Reply to a customer asking about invoice 1234."}],
        "max_tokens": 32,
        "temperature": 0,
        "ignore_eos": True,
    }
    run("chat (32 new tokens)", lambda: post(a.base, "/v1/chat/completions", chat)[0], a.n, a.warmup)
    emb = {"model": "all-minilm-l6-v2", "input": "The customer asked whether the invoice can be split."}
    run("embedding (1 sentence)", lambda: post(a.base, "/v1/embeddings", emb)[0], a.n, a.warmup)


if __name__ == "__main__":
    main()
