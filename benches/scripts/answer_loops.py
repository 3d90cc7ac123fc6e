"""How often a chat model's answer over retrieved CRM sources runs on to its cap instead of ending.

Asks eight questions (four Vietnamese, four English) of a running nfai that holds the demo CRM
(README, "A walk-through"), each with the three best hits of the store `crm` numbered in the
system message as `/v1/responses` numbers them, once per sampling setting and seed, and prints
per setting: answers cut at the cap (`finish_reason` length), mean completion tokens, answers
that cite a source (`[n]`) and mean seconds.

    python benches/scripts/answer_loops.py [--base URL] [--model M] [--max-tokens N] \
        '{}' '{"repetition_penalty": 1.1, "repeat_last_n": 64}' '{"repetition_penalty": 1}'

Each argument is a JSON object of extra request fields; `{}` is the model's catalog defaults.
Needs the `openai` package.
"""

import argparse
import json
import re
import statistics
import time

from openai import OpenAI

CITE_RULE = (
    "Answer using the sources below. After each statement taken from a source, cite it with its "
    "number in square brackets, like [1] or [2]. If the sources do not hold the answer, say so."
)
QUESTIONS = [
    "Khách hàng nào phàn nàn về đơn hàng giao trễ?",
    "Tóm tắt các phiếu hỗ trợ về thanh toán.",
    "Khách hàng nào ở Hà Nội?",
    "Có giao dịch nào đang thương lượng không?",
    "Which customers complained about late deliveries?",
    "Summarize the support tickets about billing.",
    "Which deals are in negotiation?",
    "Draft a short, polite reply to a customer asking when their order will be delivered.",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--model", default="default")
    ap.add_argument("--store", default="crm")
    ap.add_argument("--max-tokens", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("settings", nargs="+")
    args = ap.parse_args()
    client = OpenAI(base_url=args.base, api_key="unused", max_retries=0)
    store = next(s.id for s in client.vector_stores.list() if s.name == args.store)
    prompts = []
    for q in QUESTIONS:
        hits = client.vector_stores.search(store, query=q, max_num_results=3).data
        sources = "".join(
            f"\n\n[{i + 1}] {h.filename}\n" + "".join(p.text for p in h.content)
            for i, h in enumerate(hits)
        )
        prompts.append((q, CITE_RULE + sources))
    settings = [json.loads(s) for s in args.settings]
    rows = {json.dumps(s): [] for s in settings}
    for seed in range(1, args.seeds + 1):
        for q, system in prompts:
            for s in settings:
                t = time.time()
                r = client.chat.completions.create(
                    model=args.model,
                    seed=seed,
                    max_tokens=args.max_tokens,
                    messages=[
                        {"role": "system", "content": system},
                        {"role": "user", "content": q},
                    ],
                    extra_body=s,
                )
                text = r.choices[0].message.content or ""
                rows[json.dumps(s)].append(
                    (
                        r.choices[0].finish_reason == "length",
                        r.usage.completion_tokens,
                        bool(re.search(r"\[\d+\]", text)),
                        time.time() - t,
                    )
                )
    print(f"{'setting':60s} {'cut':>7s} {'tokens':>7s} {'cites':>7s} {'s':>6s}")
    for k, v in rows.items():
        n = len(v)
        print(
            f"{k:60s} {sum(x[0] for x in v):>3d}/{n:<3d} "
            f"{statistics.mean(x[1] for x in v):7.0f} "
            f"{sum(x[2] for x in v):>3d}/{n:<3d} {statistics.mean(x[3] for x in v):6.2f}"
        )


if __name__ == "__main__":
    main()
