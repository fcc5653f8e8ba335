#!/usr/bin/env bash
# Builds the fuzz targets on the pinned nightly and runs each for a short time (CI's
# smoke run). Long runs: see README.md. Needs cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")"
toolchain="nightly-2026-05-20"
seconds="${FUZZ_SECONDS:-20}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(dns http1 http2 kafka)
fi
for target in "${targets[@]}"; do
    echo "== fuzz ${target} for ${seconds}s"
    cargo "+${toolchain}" fuzz run "${target}" -- -max_len=4096 -max_total_time="${seconds}"
done
