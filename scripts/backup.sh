#!/usr/bin/env bash
# Backs up nfai's state into one folder: the data directory (API keys, uploaded files, the
# records of files and vector stores, and the embedded vector stores), the PostgreSQL database
# when one is configured (pg_dump, custom format), and the Qdrant collections when vector
# stores live in a Qdrant server (its snapshots). A manifest lists every part with its SHA-256;
# scripts/restore.sh checks them. See docs/BACKUP.md.
#
#   scripts/backup.sh --out DIR [--data-dir DIR] [--database-url-file FILE]
#                     [--qdrant-url URL] [--qdrant-api-key-file FILE] [--qdrant-prefix PREFIX]
#
# Defaults come from nfai's own variables: NFAI_DATA_DIR (else ~/.local/share/nfai),
# NFAI_DATABASE_URL_FILE or NFAI_DATABASE_URL, NFAI_QDRANT_URL (its REST port, 6333, is used
# for snapshots: give --qdrant-url http://host:6333), NFAI_QDRANT_API_KEY_FILE.
# The data directory is copied as it is on disk: stop nfai (or every writer) first for a
# consistent copy (docs/BACKUP.md says when an online copy is enough).
set -euo pipefail

out=""
data_dir="${NFAI_DATA_DIR:-$HOME/.local/share/nfai}"
db_url_file="${NFAI_DATABASE_URL_FILE:-}"
qdrant_url="${NFAI_QDRANT_URL:-}"
qdrant_key_file="${NFAI_QDRANT_API_KEY_FILE:-}"
qdrant_prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?}"; shift ;;
    --data-dir) data_dir="${2:?}"; shift ;;
    --database-url-file) db_url_file="${2:?}"; shift ;;
    --qdrant-url) qdrant_url="${2:?}"; shift ;;
    --qdrant-api-key-file) qdrant_key_file="${2:?}"; shift ;;
    --qdrant-prefix) qdrant_prefix="${2:?}"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "backup: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] || { echo "backup: --out DIR is required" >&2; exit 2; }

db_url="${NFAI_DATABASE_URL:-}"
if [ -n "$db_url_file" ]; then db_url="$(tr -d '\n' < "$db_url_file")"; fi

dest="$out/nfai-backup-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$dest"
parts=()

if [ -d "$data_dir" ]; then
  echo "backup: data directory $data_dir" >&2
  tar -C "$data_dir" -czf "$dest/data.tar.gz" .
  parts+=(data.tar.gz)
else
  echo "backup: no data directory at $data_dir (nothing stored yet); skipped" >&2
fi

if [ -n "$db_url" ]; then
  echo "backup: PostgreSQL (pg_dump)" >&2
  pg_dump --format=custom --no-owner --no-privileges --file "$dest/postgres.dump" "$db_url"
  parts+=(postgres.dump)
fi

if [ -n "$qdrant_url" ]; then
  qdrant_url="${qdrant_url%/}"
  hdr=()
  if [ -n "$qdrant_key_file" ]; then hdr=(-H "api-key: $(tr -d '\n' < "$qdrant_key_file")"); fi
  mkdir -p "$dest/qdrant"
  names="$(curl -fsS "${hdr[@]}" "$qdrant_url/collections" \
    | python3 -c 'import json,sys; [print(c["name"]) for c in json.load(sys.stdin)["result"]["collections"]]')"
  for c in $names; do
    case "$c" in "$qdrant_prefix"*) ;; *) continue ;; esac
    echo "backup: Qdrant collection $c (snapshot)" >&2
    snap="$(curl -fsS "${hdr[@]}" -X POST "$qdrant_url/collections/$c/snapshots?wait=true" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["name"])')"
    curl -fsS "${hdr[@]}" -o "$dest/qdrant/$c.snapshot" "$qdrant_url/collections/$c/snapshots/$snap"
    # The server keeps its own copy otherwise.
    curl -fsS "${hdr[@]}" -X DELETE "$qdrant_url/collections/$c/snapshots/$snap?wait=true" >/dev/null
    parts+=("qdrant/$c.snapshot")
  done
fi

[ ${#parts[@]} -gt 0 ] || { echo "backup: nothing to back up" >&2; rm -rf "$dest"; exit 1; }

python3 - "$dest" "${parts[@]}" <<'PY'
import hashlib, json, os, sys, time
dest, parts = sys.argv[1], sys.argv[2:]
def sha(p):
    h = hashlib.sha256()
    with open(os.path.join(dest, p), "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
manifest = {
    "format": 1,
    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "parts": {p: {"sha256": sha(p), "bytes": os.path.getsize(os.path.join(dest, p))} for p in parts},
}
json.dump(manifest, open(os.path.join(dest, "manifest.json"), "w"), indent=2)
PY
echo "$dest"
