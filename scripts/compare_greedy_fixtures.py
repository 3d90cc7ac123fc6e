#!/usr/bin/env python3
"""Compare two greedy.json fixture files (e.g. llama.cpp built for AVX2 and for AVX-512).

For each case: the first position where the greedy token ids differ, and the mean absolute
difference of the top-2 log-probability margins over the 32 positions (before the first
difference both sides saw the same tokens, so the margins are comparable there).

    python3 scripts/compare_greedy_fixtures.py tests/fixtures/gemma-3-270m/greedy.json OTHER.json
"""

import json
import sys


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    a, b = (json.load(open(p, encoding="utf-8")) for p in sys.argv[1:])
    cases_b = {c["name"]: c for c in b["cases"]}
    for ca in a["cases"]:
        cb = cases_b.get(ca["name"])
        if cb is None:
            print(f"{ca['name']}: missing from {sys.argv[2]}")
            continue
        ids = list(zip(ca["completion_ids"], cb["completion_ids"]))
        first = next((i for i, (x, y) in enumerate(ids) if x != y), None)
        margins = list(zip(ca["completion_top2_margins"], cb["completion_top2_margins"]))
        upto = len(margins) if first is None else first + 1
        diff = sum(abs(x - y) for x, y in margins[:upto]) / max(upto, 1)
        where = "identical" if first is None else f"first difference at token {first}"
        print(f"{ca['name']}: {where}; mean |margin difference| {diff:.3f} nats over {upto} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
