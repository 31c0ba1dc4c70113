#!/usr/bin/env bash
# Soak test (issue 11, results in docs/reliability.md): mixed traffic (chat over WebSockets, card
# rotations and lookups, Keyknox + brainkey backups and restores) from 8 users against two
# `sealkit serve` replicas on one fresh PostgreSQL database, while one replica is killed -9 and
# restarted every minute; then checks that no acknowledged write and no chat message was lost or
# duplicated, and prints p50/p99 per operation. Release build.
#
#   bench/soak.sh [SECONDS] [EXAMPLE OPTIONS...]     (default 600; see crates/client/examples/soak.rs)
#
# PostgreSQL: SEALKIT_TEST_PG (default postgres://postgres@127.0.0.1:5432/test) names the server on
# which the database is created (with psql) and dropped. Exit status 1 on any loss or duplication.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${1:-600}"
shift || true
cd "$ROOT"

cargo build --release --locked -q -p sealkit-cli -p sealkit --example soak
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
exec "$TARGET/release/examples/soak" --seconds "$DURATION" --bin "$TARGET/release/sealkit" "$@"
