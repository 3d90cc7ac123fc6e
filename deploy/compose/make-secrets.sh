#!/usr/bin/env bash
# Makes the secret files deploy/compose/compose.yaml mounts, with fresh random passwords, in
# deploy/compose/secrets/ (git-ignored, mode 0600). Files already there are kept, so running it
# again never changes a password a volume was initialised with.
#   deploy/compose/make-secrets.sh [--webhook-token TOKEN]
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
webhook_token=""
if [ "${1:-}" = "--webhook-token" ]; then webhook_token="${2:?--webhook-token needs a value}"; fi
mkdir -p "$dir"
chmod 0700 "$dir"
umask 077

rand() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
# Writes $2 into secrets/$1 unless the file exists.
put() { [ -s "$dir/$1" ] || printf '%s\n' "$2" > "$dir/$1"; }
get() { tr -d '\n' < "$dir/$1"; }

put postgres_password "$(rand)"
put redis_password "$(rand)"
put qdrant_api_key "$(rand)"
put admin_token "nfai-admin-$(rand)"
put crm_api_key "nfai-$(rand)"
put grafana_admin_password "$(rand)"
put alert_webhook_token "${webhook_token:-$(rand)}"

pg="$(get postgres_password)"
put database_url "postgres://nfai:${pg}@pgbouncer:6432/nfai"
put redis_url "redis://:$(get redis_password)@redis:6379/0"
put redis.conf "requirepass $(get redis_password)"
put qdrant_config.yaml "service:
  api_key: $(get qdrant_api_key)"
# The CRM backend's key, which nfai checks (Authorization: Bearer <secrets/crm_api_key>).
put api_keys.toml "[[keys]]
name = \"crm-backend\"
secret = \"$(get crm_api_key)\""
# PgBouncer checks clients against this list and logs in to PostgreSQL with the same password.
put pgbouncer_userlist.txt "\"nfai\" \"${pg}\""

echo "secrets in $dir:" >&2
ls -1 "$dir" >&2
