#!/usr/bin/env python3
"""Writes the sentence-transformers reference embeddings of all-MiniLM-L6-v2 that the Rust
BERT embedder is checked against (models/src/bert/tests.rs).

Usage: python3 scripts/st_reference.py MODEL_DIR OUT_JSON

MODEL_DIR is the full sentence-transformers folder of all-MiniLM-L6-v2 (with modules.json, so
that Transformer -> mean Pooling -> Normalize is loaded). Needs: pip install sentence-transformers
"""

import json
import sys
from importlib.metadata import version

from sentence_transformers import SentenceTransformer

LONG = " ".join(
    f"Section {i}: the embedding service batches requests, pads them to the longest "
    "sequence and pools over real tokens only."
    for i in range(1, 21)
)

TEXTS = [
    "The cat sits on the mat",
    "A cat is sitting on a mat",
    "Quarterly revenue grew 12% compared with last year's results!",
    "Hôm nay trời đẹp, chúng tôi đi dạo trong công viên.",
    LONG,  # longer than max_seq_length (256 tokens): exercises truncation
]


def main() -> None:
    model_dir, out_path = sys.argv[1], sys.argv[2]
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(TEXTS, batch_size=len(TEXTS), convert_to_numpy=True)
    limit = model.max_seq_length
    lengths = [
        len(model.tokenizer(t, truncation=True, max_length=limit)["input_ids"]) for t in TEXTS
    ]
    doc = {
        "generator": f"python3 scripts/st_reference.py {model_dir} {out_path} "
        f"(sentence-transformers {version('sentence-transformers')}, torch {version('torch')}, "
        f"CPU, max_seq_length {model.max_seq_length})",
        "cases": [
            {"text": t, "tokens": n, "embedding": [round(float(x), 6) for x in v]}
            for t, n, v in zip(TEXTS, lengths, vectors)
        ],
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
