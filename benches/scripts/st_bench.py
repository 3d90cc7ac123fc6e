#!/usr/bin/env python3
"""sentence-transformers (PyTorch, CPU) embeddings per second on the sentences of
benches/data/sentences.txt at batch 1, 8 and 32, printed as rows of the table that
`cargo run --release -p nfai-benches --example bench` prints.

Usage: python3 benches/scripts/st_bench.py MODEL_DIR [THREADS] [REPS]
Run through scripts/bench-side-by-side.sh, which makes the throwaway venv.
"""

import pathlib
import statistics
import sys
import time

import torch
from sentence_transformers import SentenceTransformer


def main() -> None:
    model_dir = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    torch.set_num_threads(threads)
    here = pathlib.Path(__file__).resolve().parent
    sentences = (here.parent / "data" / "sentences.txt").read_text().splitlines()
    inputs = [sentences[i % len(sentences)] for i in range(32)]
    model = SentenceTransformer(model_dir, device="cpu")
    for batch in (1, 8, 32):
        def run() -> None:
            for i in range(0, len(inputs), batch):
                model.encode(inputs[i : i + batch], batch_size=batch)

        run()  # warm-up
        rates = []
        for _ in range(reps):
            t = time.perf_counter()
            with torch.inference_mode():
                run()
            rates.append(len(inputs) / (time.perf_counter() - t))
        mean = statistics.fmean(rates)
        sd = statistics.pstdev(rates)
        print(
            f"| {'all-MiniLM-L6-v2 F32':<26} | {'':>10} | {'torch ' + torch.__version__:<15} "
            f"| {threads:>7} | {'embed b' + str(batch):>12} | {f'{mean:.2f} ± {sd:.2f}':>20} |"
        )


if __name__ == "__main__":
    main()
