#!/usr/bin/env python3
"""Turns a scripts/loadtest.sh run (k6 summary exports in k6/results/<time>/) into a Markdown
table, and with --record writes it into docs/CAPACITY.md between its
`<!-- loadtest:begin -->` and `<!-- loadtest:end -->` markers.

    python3 k6/summarize.py k6/results/<time>
    python3 k6/summarize.py --record docs/CAPACITY.md k6/results/<time>
"""
import json
import os
import platform
import subprocess
import sys

ORDER = ["chat", "nongen", "embeddings", "vector_search", "crm_mixed", "spike_unloaded", "spike"]
TITLES = {
    "chat": "warm chat (streamed, 16 tokens)",
    "nongen": "non-generating routes",
    "embeddings": "embeddings (1 or 8 texts)",
    "vector_search": "vector search",
    "crm_mixed": "mixed CRM traffic, 100 VUs",
    "spike_unloaded": "the spike's request, one client",
    "spike": "spike to 2× chat capacity",
}

ADMITTED = "http_req_duration{scenario:spike,expected_response:true}"


def ms(v):
    return "–" if v is None else f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def row(name, m):
    dur = m.get(f"http_req_duration{{scenario:{name}}}") or m.get("http_req_duration", {})
    served = m.get("nfai_answers_2xx", {})
    count = lambda k: int(m.get(k, {}).get("count", 0))
    ttft = m.get("nfai_ttft_p95_seconds", {}).get("value")
    failed = [f"{metric.split('{')[0]} {t}" for metric, v in m.items()
              for t, crossed in v.get("thresholds", {}).items() if crossed]
    return "| {} | {:.1f} | {} | {} | {} | {} | {} | {} / {} / {} | {} |".format(
        TITLES.get(name, name),
        served.get("rate", 0.0),
        int(served.get("count", 0)),
        ms(dur.get("med")),
        ms(dur.get("p(95)")),
        ms(dur.get("p(99)")),
        "–" if ttft is None else ms(ttft * 1000),
        count("nfai_answers_429"), count("nfai_answers_503"), count("nfai_answers_other"),
        "pass" if not failed else "missed: " + "; ".join(failed),
    )


def table(folder):
    cpu = "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(l.split(":", 1) for l in lscpu.splitlines() if ":" in l)
        cpu = f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"
    except OSError:
        pass
    lines = [
        f"Run `{os.path.basename(folder.rstrip('/'))}` on {platform.node() or 'this machine'} "
        f"({cpu}); k6 and nfai on the same machine.",
        "",
        "| scenario | served req/s | served | p50 ms | p95 ms | p99 ms | TTFT p95 ms | 429 / 503 / other | targets |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ORDER:
        path = os.path.join(folder, f"{name}.json")
        if os.path.exists(path):
            lines.append(row(name, json.load(open(path))["metrics"]))
    notes = []
    spikes = [os.path.join(folder, f"{n}.json") for n in ("spike_unloaded", "spike")]
    if all(os.path.exists(p) for p in spikes):
        alone, spike = (json.load(open(p))["metrics"].get(ADMITTED, {}) for p in spikes)
        if alone.get("p(99)") and spike.get("p(99)"):
            notes.append(
                f"Spike: the admitted (200) requests' p99 {ms(spike['p(99)'])} ms against "
                f"{ms(alone['p(99)'])} ms from one client ({spike['p(99)'] / alone['p(99)']:.2f}×; "
                "the bound is 2×)."
            )
    rss = os.path.join(folder, "rss.json")
    if os.path.exists(rss):
        r = json.load(open(rss))
        notes.append(
            f"nfai's RSS through the spike: {r['steady_kib'] / 1024:.0f} MiB steady, "
            f"{r['peak_kib'] / 1024:.0f} MiB at most ({r['peak_kib'] / r['steady_kib']:.3f}×; "
            "the bound is 1.1×)."
        )
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def main():
    args = sys.argv[1:]
    if args[:1] == ["--record"]:
        doc, folder = args[1], args[2]
        text = open(doc, encoding="utf-8").read()
        begin, end = "<!-- loadtest:begin -->", "<!-- loadtest:end -->"
        a, b = text.index(begin) + len(begin), text.index(end)
        open(doc, "w", encoding="utf-8").write(text[:a] + "\n" + table(folder) + text[b:])
    else:
        sys.stdout.write(table(args[0]))


if __name__ == "__main__":
    main()
