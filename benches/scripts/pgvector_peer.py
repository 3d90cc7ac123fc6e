#!/usr/bin/env python3
"""pgvector peer of the embedded-store benchmark (benches/benches/retrieval_store.rs).

PostgreSQL 16 with pgvector 0.6.2 from PyPI's `pgserver` (it runs the server as an
unprivileged user, also when started by root), loaded with the same vectors as the embedded
store and indexed with HNSW (cosine, the same m and ef_construction). The Rust bench starts
this script through pgvector_peer.sh and drives it over stdin/stdout, one line each way, so
that the two engines run alternately in one process tree:

    -> (started)                        <- ready {"rows": N, "build_s": ..., ...}
    -> run EF WARMUP N                  <- {"ef": EF, "latencies_us": [...], "ids": [[...], ...]}
    -> quit                             (the server is stopped)

Files read from DATA (written by the Rust bench): vectors.f32 and queries.f32, little-endian
f32 rows of DIM values. The database lives in PGDATA (default $TMPDIR/nfai-bench-pgvector,
outside /root: pgserver makes every parent of its data folder traversable by its user); it
is reused while its marker matches the data.

Timing is per query on the client: a prepared `SELECT id ... ORDER BY embedding <=> $1
LIMIT 10` over a Unix socket with psycopg 3, query vectors formatted before the clock
starts. The `ready` line reports the round trip of `SELECT 1` so that the client's share
can be told apart.

Usage: pgvector_peer.sh serve --data DIR --dim 384 --m 16 --ef-construction 100 [--pgdata DIR]
"""

import argparse
import json
import os
import pathlib
import struct
import sys
import tempfile
import time

import numpy as np
import pgserver
import psycopg


def log(msg: str) -> None:
    print(f"pgvector peer: {msg}", file=sys.stderr, flush=True)


def read_rows(path: pathlib.Path, dim: int) -> np.ndarray:
    data = np.fromfile(path, dtype="<f4")
    if data.size % dim:
        raise SystemExit(f"{path}: {data.size} floats is not a multiple of {dim}")
    return data.reshape(-1, dim)


def copy_binary(vectors: np.ndarray) -> bytes:
    """The rows as PostgreSQL's binary COPY stream: (id bigint, embedding vector)."""
    n, dim = vectors.shape
    row = np.dtype([
        ("nfields", ">i2"), ("id_len", ">i4"), ("id", ">i8"),
        ("vec_len", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("values", ">f4", (dim,)),
    ])
    rows = np.empty(n, dtype=row)
    rows["nfields"] = 2
    rows["id_len"] = 8
    rows["id"] = np.arange(n, dtype=np.int64)
    rows["vec_len"] = 4 + 4 * dim
    rows["dim"] = dim
    rows["unused"] = 0
    rows["values"] = vectors
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    return header + rows.tobytes() + struct.pack(">h", -1)


def vector_literal(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


def ensure_loaded(conn, vectors: np.ndarray, args, marker: pathlib.Path, fingerprint: dict) -> float:
    if marker.exists() and json.loads(marker.read_text()) == fingerprint:
        log("reusing the loaded table and its HNSW index")
        return float(fingerprint.get("build_s", 0.0))
    dim = vectors.shape[1]
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cur.execute("DROP TABLE IF EXISTS items")
        cur.execute(f"CREATE TABLE items (id bigint PRIMARY KEY, embedding vector({dim}) NOT NULL)")
        log(f"loading {len(vectors)} vectors")
        with cur.copy("COPY items (id, embedding) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(copy_binary(vectors))
        cur.execute("SET maintenance_work_mem = '2GB'")
        cur.execute("SET max_parallel_maintenance_workers = 1")
        log(f"building HNSW (m={args.m}, ef_construction={args.ef_construction})")
        t = time.perf_counter()
        cur.execute(
            f"CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {args.m}, ef_construction = {args.ef_construction})"
        )
        build_s = time.perf_counter() - t
        cur.execute("VACUUM ANALYZE items")
    marker.write_text(json.dumps({**fingerprint, "build_s": build_s}))
    return build_s


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["serve"])
    p.add_argument("--data", required=True, type=pathlib.Path)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=100)
    p.add_argument("--pgdata", type=pathlib.Path,
                   default=pathlib.Path(tempfile.gettempdir()) / "nfai-bench-pgvector")
    args = p.parse_args()

    vectors = read_rows(args.data / "vectors.f32", args.dim)
    queries = read_rows(args.data / "queries.f32", args.dim)
    literals = [vector_literal(q) for q in queries]
    fingerprint = {
        "rows": int(vectors.shape[0]), "dim": args.dim, "m": args.m,
        "ef_construction": args.ef_construction,
        "vectors_bytes": (args.data / "vectors.f32").stat().st_size,
        "vectors_mtime": int((args.data / "vectors.f32").stat().st_mtime),
    }

    args.pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(args.pgdata, cleanup_mode="stop")
    marker = args.pgdata / "nfai-bench.json"
    # shared_buffers large enough for the table and the index (PostgreSQL's default is 128 MB).
    server.psql("ALTER SYSTEM SET shared_buffers = '1GB';")
    restart = "1GB" not in server.psql("SHOW shared_buffers;")
    if restart:
        server.cleanup()
        server = pgserver.get_server(args.pgdata, cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        build_s = ensure_loaded(conn, vectors, args, marker, fingerprint)
        with conn.cursor() as cur:
            cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            pgvector_version = cur.fetchone()[0]
            cur.execute("SHOW server_version")
            server_version = cur.fetchone()[0]
            cur.execute("SHOW shared_buffers")
            shared_buffers = cur.fetchone()[0]
            trips = []
            for _ in range(2000):
                t = time.perf_counter_ns()
                cur.execute("SELECT 1", prepare=True)
                cur.fetchone()
                trips.append(time.perf_counter_ns() - t)
            trips.sort()
        print("ready " + json.dumps({
            "rows": int(vectors.shape[0]), "build_s": build_s, "postgres": server_version,
            "pgvector": pgvector_version, "psycopg": psycopg.__version__,
            "shared_buffers": shared_buffers, "select1_p50_us": trips[len(trips) // 2] / 1000,
        }), flush=True)

        sql = "SELECT id FROM items ORDER BY embedding <=> %s::vector LIMIT 10"
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] == "quit":
                break
            if words[0] != "run" or len(words) != 4:
                raise SystemExit(f"unknown command {line!r}")
            ef, warmup, n = (int(w) for w in words[1:])
            with conn.cursor() as cur:
                cur.execute(f"SET hnsw.ef_search = {ef}")
                for i in range(warmup):
                    cur.execute(sql, (literals[i % len(literals)],), prepare=True)
                    cur.fetchall()
                latencies, ids = [], []
                for i in range(n):
                    q = literals[i % len(literals)]
                    t = time.perf_counter_ns()
                    cur.execute(sql, (q,), prepare=True)
                    rows = cur.fetchall()
                    latencies.append((time.perf_counter_ns() - t) / 1000)
                    ids.append([r[0] for r in rows])
            print(json.dumps({"ef": ef, "latencies_us": latencies, "ids": ids}), flush=True)
    server.cleanup()


if __name__ == "__main__":
    main()
