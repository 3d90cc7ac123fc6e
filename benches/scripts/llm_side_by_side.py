#!/usr/bin/env python3
"""nfai's language-model engine beside llama.cpp on the same GGUF files, CPU and threads, in one
run, printed as one table with ratios (stdlib only; run by scripts/bench-side-by-side.sh).

Per model, alternating the two engines:
  1. prompt processing and decode at batch 1: llama-bench (pp128, tg128) and nfai's bench
     example (`pp128 b1`, `tg128 b1`), twice each, in the order llama, nfai, llama, nfai;
  2. decode at batch 1, 4 and 8: llama-batched-bench (S_TG, 128 prompt + 128 new tokens per
     sequence) and nfai's bench (`tg128 bN`);
  3. warm requests over HTTP: llama-server and `nfai serve` both up, requests sent to one then
     the other, each with a prompt of about 20 tokens that starts differently (so that neither
     prompt cache helps) and exactly 32 new tokens (temperature 0, ignore_eos); p50 of the
     end-to-end times. A chat model is asked through /v1/chat/completions, a base model (Gemma 3
     270M has no chat template) through /v1/completions;
  4. aggregate decode of 8 clients at once over HTTP: llama-server with 8 slots (`-np 8`) and
     `nfai serve` with the model's `max_concurrent` at 8, each round 8 requests sent together
     (prompts as in 3, exactly 128 new tokens each), rounds alternated; generated tokens of a
     round ÷ its wall time, averaged over `-r` rounds.

    python3 benches/scripts/llm_side_by_side.py --llama-bin DIR --nfai-bench BIN --nfai BIN \
        --model gemma=PATH --model smollm2=PATH [-t 2] [-r 3] [-n 20]
"""

import argparse
import concurrent.futures
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

# Model ids in nfai's catalog, and whether the file carries a chat template.
MODELS = {
    "gemma": ("gemma-3-270m", False),
    "smollm2": ("smollm2-135m-instruct", True),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, env=None):
    log("$ " + " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.stderr.write(res.stdout[-4000:] + res.stderr[-4000:])
        raise SystemExit(f"{cmd[0]} failed with status {res.returncode}")
    return res.stdout


def llama_bench(a, gguf):
    """{'pp128': t/s, 'tg128': t/s} from llama-bench's JSON lines."""
    out = run([os.path.join(a.llama_bin, "llama-bench"), "-m", gguf, "-p", "128", "-n", "128",
               "-t", str(a.threads), "-r", str(a.reps), "-o", "jsonl"])
    found = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
            found[test] = r["avg_ts"]
    return found


def llama_batched(a, gguf, batches):
    """{batch: S_TG t/s} from llama-batched-bench's JSON lines."""
    out = run([os.path.join(a.llama_bin, "llama-batched-bench"), "-m", gguf, "-c", "4096",
               "-b", "2048", "-ub", "512", "-npp", "128", "-ntg", "128",
               "-npl", ",".join(map(str, batches)), "-t", str(a.threads),
               "--output-format", "jsonl"])
    return {json.loads(l)["pl"]: json.loads(l)["speed_tg"]
            for l in out.splitlines() if l.startswith("{")}


ROW = re.compile(r"^\|.*\|\s*(pp|tg)128 b(\d+)\s*\|\s*([\d.]+) ± ([\d.]+)\s*\|$")


def nfai_bench(a, gguf, what, batches):
    """{'pp128 b1': t/s, 'tg128 bN': t/s} from nfai's bench rows."""
    out = run([a.nfai_bench, "--model", gguf, "-t", str(a.threads), "-r", str(a.reps),
               "--batches", ",".join(map(str, batches)), what])
    found = {}
    for line in out.splitlines():
        m = ROW.match(line.strip())
        if m:
            found[f"{m[1]}128 b{m[2]}"] = float(m[3])
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300) as res:
        data = json.loads(res.read())
    return time.perf_counter() - start, data


def wait_ready(url, proc, what, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as res:
                if res.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} not ready after {timeout} s")


def request_body(model_id, chat, i, new_tokens=32):
    """The i-th request: a ~20-token prompt whose first words differ between requests."""
    text = f"Ticket {1000 + i}: the customer asks when invoice {4521 + i} will be paid."
    body = {"model": model_id, "max_tokens": new_tokens, "temperature": 0, "ignore_eos": True}
    if chat:
        body["messages"] = [{"role": "system", "content": "Reply briefly."},
                            {"role": "user", "content": text}]
    else:
        body["prompt"] = text
    return body


def start_llama_server(a, name, gguf, slots):
    """llama-server on a free port with `slots` parallel slots of 1,024 tokens or more each."""
    port = free_port()
    log_file = open(os.path.join(a.tmp, f"llama-server-{name}-np{slots}.log"), "w")
    cmd = [os.path.join(a.llama_bin, "llama-server"), "-m", gguf, "-t", str(a.threads),
           "-c", str(max(4096, 1024 * slots)), "-np", str(slots), "--port", str(port),
           "--host", "127.0.0.1"]
    log("$ " + " ".join(cmd))
    server = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/health", server, "llama-server")
    except BaseException:
        stop(server)
        raise
    return server, url


def stop(proc):
    proc.terminate()
    proc.wait()


def endpoints(name, llama_url, nfai_url):
    path = "/v1/chat/completions" if MODELS[name][1] else "/v1/completions"
    return {"llama.cpp": llama_url + path, "nfai": nfai_url + path}


def ask(who, url, body, new_tokens):
    """One request; its time and usage, checked to hold exactly `new_tokens` new tokens."""
    if who == "llama.cpp":
        body["cache_prompt"] = False
    t, data = post(url, body)
    usage = data.get("usage", {})
    if usage.get("completion_tokens") != new_tokens:
        raise SystemExit(f"{who} answered {usage} instead of {new_tokens} new tokens")
    return t, usage


def http_latency(a, name, gguf, nfai_url):
    """p50 seconds and prompt tokens of llama-server and nfai, requests alternated."""
    model_id, chat = MODELS[name]
    server, llama_url = start_llama_server(a, name, gguf, 1)
    try:
        ends = endpoints(name, llama_url, nfai_url)
        times = {k: [] for k in ends}
        prompt_tokens = {}
        for i in range(-a.warmup, a.requests):
            for who, url in ends.items():
                body = request_body(model_id, chat, i + a.warmup + 1)
                t, usage = ask(who, url, body, 32)
                prompt_tokens[who] = usage.get("prompt_tokens")
                if i >= 0:
                    times[who].append(t)
        return {k: statistics.median(v) for k, v in times.items()}, prompt_tokens
    finally:
        stop(server)


def http_aggregate(a, name, gguf, nfai_url, clients=8, new_tokens=128):
    """Generated tokens per second of `clients` requests sent together, llama-server with as
    many slots against nfai, rounds alternated (one warm-up round each first)."""
    model_id, chat = MODELS[name]
    server, llama_url = start_llama_server(a, name, gguf, clients)
    try:
        ends = endpoints(name, llama_url, nfai_url)
        rates = {k: [] for k in ends}
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            for r in range(-1, a.reps):
                for who, url in ends.items():
                    bodies = [request_body(model_id, chat, 100 * (r + 2) + c, new_tokens)
                              for c in range(clients)]
                    start = time.perf_counter()
                    done = list(pool.map(lambda b: ask(who, url, b, new_tokens), bodies))
                    wall = time.perf_counter() - start
                    if r >= 0:
                        rates[who].append(len(done) * new_tokens / wall)
        return {k: statistics.mean(v) for k, v in rates.items()}
    finally:
        stop(server)


def slots_config(a, slots):
    """A config file whose `[[models]]` are the catalog's entries of the models compared, with
    `max_concurrent = slots`."""
    with open(a.catalog) as f:
        catalog = f.read()
    ids = {MODELS[n][0] for n, _ in a.models}
    blocks = [b for b in catalog.split("[[models]]\n")[1:]
              if re.search(r'^id = "([^"]+)"', b, re.M).group(1) in ids]
    text = "".join("[[models]]\n" + re.sub(r"^max_concurrent = \d+", f"max_concurrent = {slots}",
                                           b, flags=re.M) for b in blocks)
    path = os.path.join(a.tmp, f"nfai-{slots}-slots.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def start_nfai(a, config=None):
    port = free_port()
    data_dir = os.path.join(a.tmp, "nfai-data")
    os.makedirs(data_dir, exist_ok=True)
    serve = ",".join(MODELS[n][0] for n, _ in a.models)
    cmd = [a.nfai, "serve", "--port", str(port), "--threads", str(a.threads), "--serve", serve,
           "--no-fetch", "--data-dir", data_dir, "--keep-alive=-1"]
    if config:
        cmd += ["--config", config]
    log("$ " + " ".join(cmd))
    log_file = open(os.path.join(a.tmp, f"nfai-serve-{port}.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/ready", proc, "nfai serve")
    return proc, url


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown CPU", ""
    name = next((l.split(":", 1)[1].strip() for l in out.splitlines()
                 if l.startswith("Model name")), "unknown CPU")
    flags = next((l.split(":", 1)[1].split() for l in out.splitlines()
                  if l.startswith("Flags")), [])
    keep = [f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma", "avx_vnni")]
    return name, " ".join(keep)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-bin", required=True)
    ap.add_argument("--nfai-bench", required=True)
    ap.add_argument("--nfai", required=True)
    ap.add_argument("--model", action="append", required=True,
                    help="NAME=PATH, NAME one of " + ", ".join(MODELS))
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--reps", type=int, default=3)
    ap.add_argument("-n", "--requests", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--llama-isa", default=os.environ.get("LLAMA_CPP_ISA", "native"))
    ap.add_argument("--profile", default=os.environ.get("PROFILE", "dev"))
    ap.add_argument("--catalog", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "router", "catalog.toml"),
        help="the model catalog whose entries the 8-slot nfai config copies")
    a = ap.parse_args()
    a.models = [tuple(m.split("=", 1)) for m in a.model]
    for name, path in a.models:
        if name not in MODELS or not os.path.isfile(path):
            raise SystemExit(f"--model {name}={path}: unknown name or missing file")
    a.tmp = tempfile.mkdtemp(prefix="nfai-side-by-side-")

    rows = []  # (model, test, llama, nfai, higher_is_better)
    for name, gguf in a.models:
        lb = [llama_bench(a, gguf)]
        nb = [nfai_bench(a, gguf, "llm", [1])]
        lb.append(llama_bench(a, gguf))
        nb.append(nfai_bench(a, gguf, "llm", [1]))
        for test in ("pp128", "tg128"):
            rows.append((name, f"{test} b1 (llama-bench)",
                         statistics.mean(r[test] for r in lb),
                         statistics.mean(r[f"{test} b1"] for r in nb), True))
        batches = [1, 4, 8]
        lbb = llama_batched(a, gguf, batches)
        nbb = nfai_bench(a, gguf, "tg", batches)
        for b in batches:
            rows.append((name, f"tg128 b{b} (batched-bench S_TG)", lbb[b], nbb[f"tg128 b{b}"],
                         True))

    nfai_proc, nfai_url = start_nfai(a)
    prompts = {}
    try:
        for name, gguf in a.models:
            p50, prompt_tokens = http_latency(a, name, gguf, nfai_url)
            prompts[name] = prompt_tokens
            kind = "chat" if MODELS[name][1] else "completion"
            rows.append((name, f"HTTP {kind} p50 ms, 32 new", p50["llama.cpp"] * 1000,
                         p50["nfai"] * 1000, False))
    finally:
        stop(nfai_proc)

    nfai_proc, nfai_url = start_nfai(a, slots_config(a, 8))
    try:
        for name, gguf in a.models:
            agg = http_aggregate(a, name, gguf, nfai_url)
            rows.append((name, "HTTP 8 clients at once (8 slots), 128 new each, aggregate",
                         agg["llama.cpp"], agg["nfai"], True))
    finally:
        stop(nfai_proc)

    cpu, flags = cpu_model()
    print(f"CPU: {cpu}, {os.cpu_count()} logical CPUs; flags: {flags}")
    print(f"llama.cpp build: {a.llama_isa}; nfai kernels: "
          f"{os.environ.get('NFAI_KERNELS', 'fastest available')}; nfai profile: {a.profile}; "
          f"{a.threads} threads; llama-bench/nfai bench reps: {a.reps}; HTTP: p50 of "
          f"{a.requests} requests each, alternated; HTTP aggregate: mean of {a.reps} rounds each, "
          f"alternated")
    for name, p in prompts.items():
        print(f"HTTP prompt tokens ({name}): llama.cpp {p.get('llama.cpp')}, nfai {p.get('nfai')}")
    print()
    print("| model | test | llama.cpp | nfai | nfai vs llama.cpp |")
    print("|---|---|---:|---:|---:|")
    for model, test, llama, nfai, higher in rows:
        # Above 1 means nfai is faster, for throughput (t/s) and latency (ms) alike.
        ratio = nfai / llama if higher else llama / nfai
        unit = "t/s" if higher else "ms"
        print(f"| {model} | {test} | {llama:,.1f} {unit} | {nfai:,.1f} {unit} | "
              f"**{ratio:.2f}×** {'faster' if ratio >= 1 else 'slower'} |")


if __name__ == "__main__":
    main()
