#!/usr/bin/env bash
# Creates the development secrets docker-compose.yml mounts, under ./secrets/dev/ (git-ignored), once.
# For production, create the same files somewhere outside the repository and point SECRETS_DIR at it
# (docs/secrets.md).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-secrets/dev}"
mkdir -p "$dir"
chmod 700 "$dir"
rand() { head -c "$1" /dev/urandom | base64 | tr -d '\n'; }
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
put() { [ -e "$dir/$1" ] || { printf '%s\n' "$2" > "$dir/$1"; chmod 600 "$dir/$1"; echo "created $dir/$1"; }; }
put postgres_password "$(hex 24)"
put redis_password "$(hex 24)"
put database_url "postgres://todo:$(cat "$dir/postgres_password")@postgres:5432/todo"
put redis_url "redis://default:$(cat "$dir/redis_password")@redis:6379/0"
put jwt_key "$(rand 32)"
put identity_secret "$(rand 32)"
put admin_token "$(hex 32)"
