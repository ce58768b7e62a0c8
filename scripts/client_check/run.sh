#!/usr/bin/env bash
# make client-check: generate a client from the served /openapi.json with openapi-python-client,
# type-check program.py against it with mypy --strict (silent on the generated code, whose own
# client.py template trips strict mode), then run it against a live server (SQLite).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/.venv/bin"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

export APP_ENV=development DATABASE_URL="sqlite:///$WORK/client-check.db" FLASK_APP=wsgi LOG_LEVEL=WARNING
PORT="$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cd "$ROOT"
"$BIN/flask" db upgrade >/dev/null 2>&1
"$BIN/flask" run --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 50); do
  "$BIN/python" -c "import urllib.request; urllib.request.urlopen('$URL/health', timeout=1)" 2>/dev/null && break
  sleep 0.2
done

# The generator runs ruff on its output: it must find ours on PATH.
PATH="$BIN:$PATH" "$BIN/openapi-python-client" generate --url "$URL/openapi.json" \
  --output-path "$WORK/webapp_client" --meta none >"$WORK/generate.log" 2>&1 \
  || { cat "$WORK/generate.log"; exit 1; }
if grep -qi "warning" "$WORK/generate.log"; then cat "$WORK/generate.log"; exit 1; fi

cp scripts/client_check/program.py "$WORK/program.py"
(cd "$WORK" && "$BIN/mypy" --strict --follow-imports=silent --cache-dir "$WORK/.mypy_cache" program.py)
(cd "$WORK" && "$BIN/python" program.py "$URL") || { tail -20 "$WORK/server.log"; exit 1; }
