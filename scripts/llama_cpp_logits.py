#!/usr/bin/env python3
"""Record llama.cpp's next-token log-probabilities at every prompt position of a model.

Starts llama-server on a free local port with the given GGUF (normally a tiny synthetic file
from `nfai models synth`), then, for each fixed token-id prompt and each prefix length k,
asks POST /completion for one token with `n_probs` set, which returns the top log-probabilities
of the next token after the first k prompt tokens (softmax of the raw logits). Writes them to
one JSON file:

  {"generator", "llama_cpp", "model_sha256", "synth", "top_k",
   "cases": [{"name", "prompt_ids", "positions": [{"ids": [...], "logprobs": [...]}, ...]}]}

where positions[k - 1] describes the distribution after prompt_ids[:k]. Standard library
only; normally invoked through scripts/llama-cpp-synth-fixtures.sh.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llama_cpp_fixtures import (  # noqa: E402
    DEFAULT_SERVER,
    DEFAULT_VERSION_FILE,
    Server,
    sha256_file,
    write_json,
)

TOP_K = 8
# The synthetic vocabulary's specials, byte tokens and turn markers (ids 0..262).
BANNED = 262


def prompts(vocab: int) -> list[tuple[str, list[int]]]:
    """Fixed prompts of token ids: a short one, a repetitive one, a long pseudo-random one."""
    state = 12345

    def rand() -> int:
        nonlocal state
        state = (state * 1103515245 + 12345) % (1 << 31)
        return state

    long_ids = [2] + [4 + rand() % (vocab - 4) for _ in range(70)]
    return [
        ("short", [2, 76, 105, 110, 32, 99, 104, 224]),
        ("repeat", [2] + [40, 41, 42, 43] * 6),
        ("random_70", long_ids),
    ]


def next_token_logprobs(server: Server, prefix: list[int]) -> dict:
    body = {
        "prompt": prefix,
        "n_predict": 1,
        "temperature": 0,
        "top_k": 1,
        "samplers": ["top_k"],
        "cache_prompt": True,
        "n_probs": TOP_K,
        "return_tokens": True,
        # The server reports probabilities only with text it can stream, and a byte token
        # may end inside a UTF-8 character: the sampled token is kept off the special and
        # byte tokens. The recorded log-probabilities are those of the raw logits.
        "ignore_eos": True,
        "logit_bias": [[i, False] for i in range(BANNED)],
    }
    res = server.post("/completion", body)
    probs = res.get("completion_probabilities", res.get("probs"))
    if not isinstance(probs, list) or len(probs) != 1:
        raise RuntimeError(f"expected one probability entry, got {probs!r}")
    top = probs[0]["top_logprobs"]
    if len(top) != TOP_K:
        raise RuntimeError(f"expected {TOP_K} candidates, got {len(top)}")
    return {
        "ids": [t["id"] for t in top],
        "logprobs": [round(t["logprob"], 5) for t in top],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="path to the GGUF model")
    ap.add_argument("--out", required=True, type=Path, help="output JSON file")
    ap.add_argument("--vocab", required=True, type=int, help="the model's vocabulary size")
    ap.add_argument("--synth", required=True, help="the `nfai models synth` arguments that made the file")
    ap.add_argument("--server", type=Path, default=DEFAULT_SERVER, help="llama-server binary")
    ap.add_argument("--generator", default=None, help="command line recorded in the fixture")
    args = ap.parse_args()
    version = DEFAULT_VERSION_FILE.read_text().strip() if DEFAULT_VERSION_FILE.is_file() else "unknown"
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-server-logits-{os.getpid()}.log"
    server = Server(args.server, args.model, log_path)
    cases = []
    try:
        server.wait_ready()
        for name, ids in prompts(args.vocab):
            positions = [next_token_logprobs(server, ids[:k]) for k in range(1, len(ids) + 1)]
            cases.append({"name": name, "prompt_ids": ids, "positions": positions})
            print(f"  {name}: {len(ids)} positions", file=sys.stderr)
    finally:
        server.stop()
    write_json(
        args.out,
        {
            "generator": args.generator or " ".join(sys.argv),
            "llama_cpp": version,
            "model_sha256": sha256_file(args.model),
            "synth": args.synth,
            "top_k": TOP_K,
            "cases": cases,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
