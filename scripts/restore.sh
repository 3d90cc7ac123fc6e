#!/usr/bin/env bash
# Restores a backup made by scripts/backup.sh: checks every part against the manifest, then
# unpacks the data directory into an empty (or new) folder, restores the PostgreSQL dump into
# the configured database, and uploads the Qdrant snapshots into the configured server.
# Start nfai on the restored state afterwards. See docs/BACKUP.md.
#
#   scripts/restore.sh --from BACKUP_DIR --data-dir DIR [--database-url-file FILE]
#                      [--qdrant-url URL] [--qdrant-api-key-file FILE] [--force]
#
# --force restores into a data directory that is not empty (its files are replaced).
set -euo pipefail

from=""
data_dir=""
db_url_file="${NFAI_DATABASE_URL_FILE:-}"
qdrant_url="${NFAI_QDRANT_URL:-}"
qdrant_key_file="${NFAI_QDRANT_API_KEY_FILE:-}"
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from="${2:?}"; shift ;;
    --data-dir) data_dir="${2:?}"; shift ;;
    --database-url-file) db_url_file="${2:?}"; shift ;;
    --qdrant-url) qdrant_url="${2:?}"; shift ;;
    --qdrant-api-key-file) qdrant_key_file="${2:?}"; shift ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "restore: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$from" ] && [ -f "$from/manifest.json" ] || { echo "restore: --from must be a backup folder with manifest.json" >&2; exit 2; }

db_url="${NFAI_DATABASE_URL:-}"
if [ -n "$db_url_file" ]; then db_url="$(tr -d '\n' < "$db_url_file")"; fi

# Every part is whole before anything is touched.
list="$(python3 - "$from" <<'PY'
import hashlib, json, os, sys
src = sys.argv[1]
m = json.load(open(os.path.join(src, "manifest.json")))
if m.get("format") != 1:
    sys.exit(f"restore: manifest format {m.get('format')!r} is not 1")
for p, want in m["parts"].items():
    h = hashlib.sha256()
    with open(os.path.join(src, p), "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    if h.hexdigest() != want["sha256"]:
        sys.exit(f"restore: {p} does not match its SHA-256 in the manifest")
    print(p)
PY
)"
mapfile -t parts <<<"$list"

for p in "${parts[@]}"; do
  case "$p" in
    data.tar.gz)
      [ -n "$data_dir" ] || { echo "restore: the backup has a data directory: give --data-dir" >&2; exit 2; }
      mkdir -p "$data_dir"
      if [ "$force" != 1 ] && [ -n "$(ls -A "$data_dir")" ]; then
        echo "restore: $data_dir is not empty (use --force to replace its files)" >&2
        exit 1
      fi
      echo "restore: data directory into $data_dir" >&2
      tar -C "$data_dir" -xzf "$from/data.tar.gz"
      ;;
    postgres.dump)
      [ -n "$db_url" ] || { echo "restore: the backup has a PostgreSQL dump: give --database-url-file" >&2; exit 2; }
      echo "restore: PostgreSQL (pg_restore --clean)" >&2
      pg_restore --clean --if-exists --no-owner --no-privileges --exit-on-error -d "$db_url" "$from/postgres.dump"
      ;;
    qdrant/*.snapshot)
      [ -n "$qdrant_url" ] || { echo "restore: the backup has Qdrant snapshots: give --qdrant-url" >&2; exit 2; }
      c="$(basename "$p" .snapshot)"
      hdr=()
      if [ -n "$qdrant_key_file" ]; then hdr=(-H "api-key: $(tr -d '\n' < "$qdrant_key_file")"); fi
      echo "restore: Qdrant collection $c" >&2
      curl -fsS "${hdr[@]}" -X POST -F "snapshot=@$from/$p" \
        "${qdrant_url%/}/collections/$c/snapshots/upload?priority=snapshot&wait=true" >/dev/null
      ;;
    *) echo "restore: unknown part $p" >&2; exit 1 ;;
  esac
done
echo "restore: done (${#parts[@]} parts)" >&2
