#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a cycle.

Each source file is one module (`a/mod.rs` and `a.rs` are `a`, `a/b.rs` is `a::b`). An edge
runs from a module to every module it names through `crate::`, `super::` or `self::` (in `use`
statements, brace groups expanded, and in paths in code), resolved to the longest prefix that is
a module file. Declaring a child (`mod b;`) is not an edge. Inline `#[cfg(test)] mod … { … }`
blocks are left out: a unit test may reach anywhere. Every strongly connected component of more
than one module is reported.

Usage: scripts/check-module-cycles.py [crate src dir …]   (default: router/src)
"""

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_of(src: Path, file: Path) -> tuple:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts in (["lib"], ["main"]):
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def strip_comments_and_strings(text: str) -> str:
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 8]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            i = n if j < 0 else j + len(end)
            out.append('""')
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            i += len(re.match(r"'(\\.[^']*|[^\\'])'", text[i:]).group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_test_modules(text: str) -> str:
    """Removes `#[cfg(test)] mod name { … }` blocks (inline test modules)."""
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*\{")
    while True:
        m = pattern.search(text)
        if not m:
            return text
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: m.start()] + text[i:]


def expand_use(tree: str) -> list:
    """`a::{b, c::{d, e}}` → [`a::b`, `a::c::d`, `a::c::e`]."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+" + IDENT, "", tree))
    depth = 0
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                prefix, inner = tree[:i], tree[i + 1: tree.rindex("}")]
                items, level, start = [], 0, 0
                for j, c in enumerate(inner):
                    if c == "{":
                        level += 1
                    elif c == "}":
                        level -= 1
                    elif c == "," and level == 0:
                        items.append(inner[start:j])
                        start = j + 1
                items.append(inner[start:])
                return [p for item in items if item for p in expand_use(prefix + item)]
            depth += 1
    return [tree]


def paths_in(text: str, children: set) -> list:
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths.extend(expand_use(m.group(1)))
    code = re.sub(r"\buse\s+[^;]+;", "", text)
    heads = ["crate", "super", "self"] + sorted(children)
    head = r"(?<![:\w])(?:" + "|".join(map(re.escape, heads)) + r")"
    paths.extend(m.group(0) for m in re.finditer(head + r"(?:\s*::\s*" + IDENT + r")+", code))
    return [re.sub(r"\s+", "", p) for p in paths]


def resolve(path: str, current: tuple, modules: set):
    segs = [s for s in re.split(r"::", path) if s]
    if segs and current + (segs[0],) in modules:
        # A path relative to the current module: a child (`assemble::Progress`).
        segs = ["self"] + segs
    if not segs or segs[0] not in ("crate", "super", "self"):
        return None
    base = list(current)
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    else:
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
    best = tuple(base)
    for k in range(1, len(segs) + 1):
        cand = tuple(base + segs[:k])
        if cand in modules:
            best = cand
    return best


def strongly_connected(graph: dict) -> list:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check(src: Path) -> int:
    files = sorted(p for p in src.rglob("*.rs"))
    modules = {module_of(src, f): f for f in files if f.name != "main.rs"}
    graph = {m: set() for m in modules}
    for m, f in modules.items():
        text = strip_test_modules(strip_comments_and_strings(f.read_text()))
        children = {c[-1] for c in modules if len(c) == len(m) + 1 and c[: len(m)] == m}
        for p in paths_in(text, children):
            target = resolve(p, m, set(modules))
            if target is not None and target != m and target in modules:
                graph[m].add(target)
    name = lambda m: "::".join(("crate",) + m)
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    for c in cycles:
        members = set(c)
        print(f"{src}: {len(c)} modules import each other in a cycle:")
        for m in sorted(c):
            deps = sorted(name(d) for d in graph[m] & members)
            print(f"  {name(m)} -> {', '.join(deps)}")
    edges = sum(len(v) for v in graph.values())
    if not cycles:
        print(f"{src}: {len(modules)} modules, {edges} imports, no cycle")
    return 1 if cycles else 0


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    dirs = [Path(a) for a in sys.argv[1:]] or [root / "router" / "src"]
    return max(check(d) for d in dirs)


if __name__ == "__main__":
    sys.exit(main())
