#!/usr/bin/env bash
# Runs every cargo-fuzz target (sealkit-crypto, sealkit-pythia, sealkit-proto) for a fixed time.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS defaults to 30 per target; with no TARGET every target runs, one after the other
# (one libFuzzer process at a time). Installs cargo-fuzz if missing, regenerates the seed corpora
# (fuzz/seed.py), builds all targets once, then runs each with
#   cargo +nightly fuzz run <t> -- -max_total_time=SECONDS -rss_limit_mb=2048 -timeout=10
# (-timeout: one input running longer than FUZZ_TIMEOUT seconds, default 10, is reported as a
# crash; libFuzzer's own default of 1200 s would let a hang stall the whole run.)
# Logs go to fuzz/artifacts/logs/<t>.log, crash inputs to fuzz/artifacts/<t>/.
# Exits non-zero if any target crashed (or failed to build/run); the others still run.
set -euo pipefail

SECONDS_PER_TARGET="${1:-30}"
shift || true
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -eq 0 ]; then
    echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$FUZZ_DIR")"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FUZZ_DIR/target}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"

ALL_TARGETS=(message_info decrypt key_der key_text signature footer ecies group_message pythia_g1 pythia_g2 pythia_gt pythia_proof jwt card request_body chat_frame ratchet_message ratchet_session ratchet_decrypt)
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${ALL_TARGETS[@]}")
fi

if ! rustup toolchain list | grep -q "^${TOOLCHAIN}"; then
    echo "run.sh: toolchain '$TOOLCHAIN' missing, installing it" >&2
    rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: cargo-fuzz missing, installing it" >&2
    cargo install cargo-fuzz --locked
fi

python3 "$FUZZ_DIR/seed.py"

# One build for all targets (sanitizer-instrumented, release with debug assertions).
cargo "+$TOOLCHAIN" fuzz build

LOG_DIR="$FUZZ_DIR/artifacts/logs"
mkdir -p "$LOG_DIR"
failed=()
summary=()
for t in "${TARGETS[@]}"; do
    log="$LOG_DIR/$t.log"
    echo "=== $t: ${SECONDS_PER_TARGET}s (log: ${log#"$ROOT"/})"
    status=0
    cargo "+$TOOLCHAIN" fuzz run "$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout="$TIMEOUT" \
        >"$log" 2>&1 || status=$?
    # The last libFuzzer status line: "#runs DONE cov: … ft: … corp: … exec/s: …".
    last="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
    done_line="$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1 || true)"
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        summary+=("$t: FAILED (exit $status) $last")
        echo "--- $t FAILED (exit $status); end of log:"
        grep -E -A1 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written|^error' "$log" | head -n 20 || true
    else
        summary+=("$t: ok $last | $done_line")
        echo "$last"
        echo "$done_line"
    fi
done

echo
echo "=== summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed or failed: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
