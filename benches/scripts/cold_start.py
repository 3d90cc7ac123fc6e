#!/usr/bin/env python3
"""Cold request to first token against a running nfai (stdlib only).

For each round: unload the model through the admin API, then send a streamed chat request and
time the first content token; also reports the load time the cache recorded and a warm request
for comparison. Needs the server's admin token.

    NFAI_ADMIN_TOKEN=t python3 benches/scripts/cold_start.py --base http://127.0.0.1:8080 -n 5
"""

import argparse
import json
import os
import time
import urllib.request


def call(base, method, path, token, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body or {}).encode())
    req.add_header("content-type", "application/json")
    req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=120) as res:
        return json.loads(res.read())


def first_token(base, model):
    body = {
        "model": model,
        "stream": True,
        "max_tokens": 8,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Reply to a customer asking about invoice 1234."}],
    }
    req = urllib.request.Request(
        base + "/v1/chat/completions", data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as res:
        for line in res:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if any(c["delta"].get("content") for c in chunk.get("choices", [])):
                return time.perf_counter() - start
    raise RuntimeError("no content token")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="http://127.0.0.1:8080")
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("-n", type=int, default=5)
    a = ap.parse_args()
    token = os.environ["NFAI_ADMIN_TOKEN"]
    cold, loads = [], []
    for _ in range(a.n):
        call(a.base, "POST", f"/admin/models/{a.model}/unload", token, {"timeout_secs": 30})
        cold.append(first_token(a.base, a.model))
        m = next(m for m in call(a.base, "GET", "/admin/models", token)["data"] if m["id"] == a.model)
        loads.append(m["load_duration_ms"] / 1000)
    warm = [first_token(a.base, a.model) for _ in range(a.n)]
    fmt = lambda xs: " ".join(f"{x * 1000:.0f}" for x in xs)
    print(f"cold first token ms: {fmt(cold)}  (max {max(cold) * 1000:.0f})")
    print(f"  of which load ms:  {fmt(loads)}")
    print(f"warm first token ms: {fmt(warm)}  (max {max(warm) * 1000:.0f})")


if __name__ == "__main__":
    main()
