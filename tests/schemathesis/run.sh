#!/usr/bin/env bash
# Runs schemathesis against a real Token Warden server and its own OpenAPI
# document: once authenticated as an admin, once anonymously. Any failure of
# any check fails the run.
#
#   tests/schemathesis/run.sh [path/to/tokenwarden]   (default: target/debug/tokenwarden)
#
# ST_MAX_EXAMPLES (default 20) bounds the examples per operation and phase.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-target/debug/tokenwarden}"
[ -x "$bin" ] || cargo build -q -p server --bin tokenwarden
here="$(pwd)/tests/schemathesis"
work="$(mktemp -d)"
# A free port unless one is given: a server left running on a fixed port
# would otherwise answer in this one's place.
port="${TW_ST_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# The limits are lifted: the run generates thousands of requests from one
# IP, and the auth hook logs in again whenever a generated request ended its
# session. The limits themselves are tested by the black-box suite.
export DATABASE_URL="sqlite://$work/tw.db"
export TOKENWARDEN_KEYS_DIR="$work/keys"
export TOKENWARDEN_BIND="127.0.0.1:$port"
export TOKENWARDEN_COOKIE_SECURE=false
export TOKENWARDEN_LOGIN_RATE_USER=1000000/min
export TOKENWARDEN_LOGIN_RATE_IP=1000000/min
export TOKENWARDEN_REGISTER_RATE_IP=1000000/hour
export TOKENWARDEN_REFRESH_FAIL_RATE_IP=1000000/min
export RUST_LOG=warn

password="schemathesis admin password"
echo "$password" | "$bin" user create st-admin --role admin --role user --password-stdin >/dev/null
"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "the server did not start:"; cat "$work/server.log"; exit 1
fi

export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export SCHEMATHESIS_HOOKS=hooks
export TW_ST_BASE="http://127.0.0.1:$port"
# One worker: with two, Python 3.11's ast module sometimes fails inside
# hypothesis ("AST constructor recursion depth mismatch").
common=(--checks all --max-examples "${ST_MAX_EXAMPLES:-20}" --workers 1
        --generation-deterministic --exclude-path-regex '^/docs/.+')
status=0
echo "== schemathesis, authenticated as an admin"
TW_ST_USERNAME=st-admin TW_ST_PASSWORD="$password" \
  st run "http://127.0.0.1:$port/openapi.json" "${common[@]}" || status=1
echo "== schemathesis, anonymous"
st run "http://127.0.0.1:$port/openapi.json" "${common[@]}" || status=1
if [ "$status" -ne 0 ]; then
  echo "server log (last 50 lines):"; tail -50 "$work/server.log"
fi
exit "$status"
