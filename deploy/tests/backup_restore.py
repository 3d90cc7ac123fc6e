#!/usr/bin/env python3
"""Backup and restore, end to end (run by scripts/check-deploy.sh):

1. nfai on a fresh data directory ingests CRM notes into a vector store (Files and Vector
   Stores API) and answers searches, in English and Vietnamese;
2. nfai stops (SIGTERM); scripts/backup.sh backs the data directory up;
3. scripts/restore.sh restores it into another, empty data directory;
4. nfai on the restored directory gives the same search results (same files, chunks and
   scores) for the same store.

It also backs up a PostgreSQL database with rows and restores it into another one, through the
same scripts (the local server on 127.0.0.1:5432, user postgres, as in CI).

    deploy/tests/backup_restore.py <nfai binary> <model dir>
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = "all-minilm-l6-v2"
NOTES = "\n\n".join([
    "Order #4521 ships from the Hanoi warehouse on Thursday and is delivered on Friday.",
    "Invoice 1234 was paid ten days late; late fees are waived once per customer per year.",
    "Đơn hàng số 4521 được giao từ kho Hà Nội vào thứ Sáu.",
    "Khách hàng có thể đổi trả sản phẩm trong vòng 30 ngày kể từ ngày nhận hàng.",
    "Support hours are 8:00 to 18:00, Monday to Saturday, Vietnam time.",
])
QUERIES = ["When is order 4521 delivered?", "đổi trả sản phẩm", "support opening hours"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(base, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    h = {"content-type": "application/json"} if isinstance(body, (dict, list)) else {}
    h.update(headers or {})
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


class Server:
    def __init__(self, binary, models, data_dir, log):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, NFAI_HOST="127.0.0.1", NFAI_PORT=str(self.port),
                   NFAI_MODEL_DIR=models, NFAI_DATA_DIR=data_dir, NFAI_SERVE=MODEL,
                   NFAI_NO_FETCH="true", NFAI_LOG_FORMAT="text")
        self.log = open(log, "ab")
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"nfai exited with {self.proc.returncode}; log: {log}")
            try:
                if call(self.base, "GET", "/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.proc.kill()
        sys.exit(f"nfai was not ready in 180 s; log: {log}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        if self.proc.wait(timeout=60) != 0:
            sys.exit(f"nfai exited with {self.proc.returncode} on SIGTERM")
        self.log.close()


def upload(base, name, text):
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
        f"Content-Type: text/plain\r\n\r\n"
    ).encode() + text.encode() + f"\r\n--{boundary}--\r\n".encode()
    status, out = call(base, "POST", "/v1/files", body,
                       {"content-type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, f"upload: {status} {out}"
    return out["id"]


def searches(base, store):
    results = []
    for q in QUERIES:
        status, out = call(base, "POST", f"/v1/vector_stores/{store}/search",
                           {"query": q, "max_num_results": 3})
        assert status == 200, f"search {q!r}: {status} {out}"
        assert out["data"], f"search {q!r}: no results"
        results.append([(d["file_id"], round(d["score"], 5), d["content"][0]["text"]) for d in out["data"]])
    return results


PG_PORT = 5432


def psql(db, sql):
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-d", db,
                           "-tAqc", sql], check=True, capture_output=True, text=True).stdout


def private_postgres(tmp):
    """A throwaway PostgreSQL cluster on a free port, for machines where none runs on 5432:
    the Debian server's initdb and pg_ctl, as the `postgres` user when run as root."""
    global PG_PORT
    bins = sorted(d for d in os.listdir("/usr/lib/postgresql") if os.path.isdir(f"/usr/lib/postgresql/{d}/bin"))
    if not bins:
        sys.exit("backup_restore: no PostgreSQL server here (apt-get install postgresql)")
    bindir = f"/usr/lib/postgresql/{bins[-1]}/bin"
    PG_PORT = free_port()
    data = os.path.join(tmp, "pg")
    os.makedirs(data)
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(as_pg + [f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run(as_pg + [f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(data, "log"),
                            "-o", f"-h 127.0.0.1 -p {PG_PORT} -k {data}", "start"],
                   check=True, capture_output=True)
    return lambda: subprocess.run(as_pg + [f"{bindir}/pg_ctl", "-D", data, "-w", "-m", "fast", "stop"],
                                  capture_output=True)


def database_round_trip(tmp):
    stop = None
    if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode != 0:
        stop = private_postgres(tmp)
    try:
        database_round_trip_on(tmp)
    finally:
        if stop:
            stop()


def database_round_trip_on(tmp):
    src, dst = f"nfai_backup_src_{os.getpid()}", f"nfai_backup_dst_{os.getpid()}"
    for db in (src, dst):
        psql("postgres", f"DROP DATABASE IF EXISTS {db}")
        psql("postgres", f"CREATE DATABASE {db}")
    try:
        psql(src, "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);"
                  "INSERT INTO notes VALUES (1, 'Đơn hàng 4521'), (2, 'invoice 1234');")
        for name, db in (("src.url", src), ("dst.url", dst)):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(f"postgres://postgres@127.0.0.1:{PG_PORT}/{db}\n")
        empty = os.path.join(tmp, "no-data")
        backup = subprocess.run(
            ["bash", f"{ROOT}/scripts/backup.sh", "--out", os.path.join(tmp, "db-backups"),
             "--data-dir", empty, "--database-url-file", os.path.join(tmp, "src.url")],
            check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run(["bash", f"{ROOT}/scripts/restore.sh", "--from", backup,
                        "--database-url-file", os.path.join(tmp, "dst.url")], check=True)
        want = psql(src, "SELECT id, body FROM notes ORDER BY id")
        got = psql(dst, "SELECT id, body FROM notes ORDER BY id")
        assert got == want, f"restored rows differ: {got!r} != {want!r}"
        print("backup_restore: PostgreSQL rows restored into another database")
    finally:
        for db in (src, dst):
            psql("postgres", f"DROP DATABASE IF EXISTS {db}")


def main():
    binary, models = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="nfai-backup-test-")
    try:
        original, restored = os.path.join(tmp, "data"), os.path.join(tmp, "restored")
        log = os.path.join(tmp, "nfai.log")

        server = Server(binary, models, original, log)
        file_id = upload(server.base, "crm-notes.txt", NOTES)
        status, store = call(server.base, "POST", "/v1/vector_stores",
                             {"name": "backup-test", "file_ids": [file_id], "embedding_model": MODEL})
        assert status == 200, f"create store: {status} {store}"
        for _ in range(600):
            status, s = call(server.base, "GET", f"/v1/vector_stores/{store['id']}")
            if s["file_counts"]["in_progress"] == 0:
                break
            time.sleep(0.1)
        assert s["file_counts"]["completed"] == 1, f"indexing: {s['file_counts']}"
        before = searches(server.base, store["id"])
        server.stop()

        backup = subprocess.run(
            ["bash", f"{ROOT}/scripts/backup.sh", "--out", os.path.join(tmp, "backups"),
             "--data-dir", original],
            check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run(["bash", f"{ROOT}/scripts/restore.sh", "--from", backup,
                        "--data-dir", restored], check=True)

        server = Server(binary, models, restored, log)
        after = searches(server.base, store["id"])
        status, s = call(server.base, "GET", f"/v1/vector_stores/{store['id']}")
        server.stop()
        assert status == 200 and s["file_counts"]["completed"] == 1, f"restored store: {status} {s}"
        assert after == before, f"search results differ after restore:\n{before}\n{after}"
        print(f"backup_restore: {len(QUERIES)} searches give the same results after restore")

        database_round_trip(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
