#!/usr/bin/env bash
# End-to-end SDK benchmark (issue 5): the Rust SDK (crates/client/examples/bench_e2e.rs) and the real
# e3kit-node 2.5.1 (interop/bench_e2e.js) run the same steps, one after the other, against the same
# local `sealkit serve` in one run: initialize + register one user, register 50 more (setup), find the
# 50 in one call, authEncrypt 1 KiB for the 50, authDecrypt it as one of them.
#
#   bench/sdk_e2e.sh [REPS]        (default 5; encrypt/decrypt use 4*REPS samples)
#
# Prints a Markdown table: step | Sealkit | e3kit-node | ratio (e3kit time / Sealkit time).
# Needs cargo, node >= 18 and interop/node_modules (npm ci in interop/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPS="${1:-5}"
cd "$ROOT"

cargo build --release -q -p sealkit-cli -p sealkit --example bench_e2e
BIN="$ROOT/target/release/sealkit"
EXAMPLE="$ROOT/target/release/examples/bench_e2e"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" app create --name sdk-bench --json --data-dir "$WORK/data" >"$WORK/app.json"

PORT="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')"
URL="http://127.0.0.1:$PORT"
SEALKIT_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do
  if node -e 'require("http").get(process.argv[1],r=>process.exit(r.statusCode===200?0:1)).on("error",()=>process.exit(1))' "$URL/healthz"; then
    break
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "server exited:" >&2
    cat "$WORK/server.log" >&2
    exit 1
  fi
  sleep 0.1
done

"$EXAMPLE" "$URL" "$WORK/app.json" "$WORK/rs" rs "$REPS" >"$WORK/rs.out"
node "$ROOT/interop/bench_e2e.js" "$URL" "$WORK/app.json" "$WORK/js" js "$REPS" >"$WORK/js.out"

kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""

node - "$WORK/rs.out" "$WORK/js.out" <<'EOF'
const fs = require('fs');
const result = (f) => {
  const line = fs.readFileSync(f, 'utf8').split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`no RESULT line in ${f}`);
  return JSON.parse(line.slice(7));
};
const rs = result(process.argv[2]);
const js = result(process.argv[3]);
const steps = [
  ['init_register', 'initialize + register one user (median)'],
  ['initialize', '&nbsp;&nbsp;of which initialize'],
  ['register', '&nbsp;&nbsp;of which register'],
  ['register_50', 'register 50 other users (setup, one run, sequential)'],
  ['find_50', 'find 50 users (one call, median)'],
  ['auth_encrypt_50', 'auth_encrypt 1 KiB for 50 recipients (median)'],
  ['auth_decrypt', 'auth_decrypt by one recipient (median)'],
];
const f = (ms) => (ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(2)} ms`);
console.log(`| step | Sealkit | e3kit-node ${js.e3kit} | ratio (e3kit / Sealkit) |`);
console.log('|---|---:|---:|---:|');
for (const [k, label] of steps) {
  console.log(`| ${label} | ${f(rs[k])} | ${f(js[k])} | ${(js[k] / rs[k]).toFixed(1)}x |`);
}
console.log('');
console.log(`repetitions: ${rs.reps} (encrypt/decrypt: ${4 * rs.reps}); ciphertext: Sealkit ${rs.ciphertext_bytes} B, e3kit ${js.ciphertext_bytes} B`);
EOF
