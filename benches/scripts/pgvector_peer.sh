#!/usr/bin/env bash
# The pgvector peer of `cargo bench -p nfai-benches --bench retrieval_store`: makes the
# benchmark virtualenv .venv-bench (git-ignored; pinned pgserver, psycopg and numpy) if it is
# missing, then runs benches/scripts/pgvector_peer.py with the given arguments. The Rust bench
# starts it itself; run `bash benches/scripts/pgvector_peer.sh setup` to only make the venv.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.venv-bench"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.pgvector-peer-ok" ]; then
  echo "pgvector peer: installing pgserver, psycopg and numpy into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    pgserver==0.1.4 'psycopg[binary]==3.3.9' numpy==2.4.6 >&2
  touch "$venv/.pgvector-peer-ok"
fi
if [ "${1:-}" = "setup" ]; then
  exit 0
fi
exec "$venv/bin/python" "$root/benches/scripts/pgvector_peer.py" "$@"
