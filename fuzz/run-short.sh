#!/usr/bin/env bash
# CI's smoke run: builds the fuzz targets on the pinned nightly, then runs each for a short
# time from the committed seeds (corpus/<target>/seed-*), two at a time (one per core).
# Fails on any crash, hang (-timeout) or out-of-memory, and prints the input that caused it:
# its path under artifacts/<target>/ and its base64. Long runs: see README.md.
#
#   bash fuzz/run-short.sh                  # every target, FUZZ_SECONDS (25) each
#   FUZZ_SECONDS=60 bash fuzz/run-short.sh http2 kafka
#   FUZZ_FLAGS="-seed=1 -only_ascii=1" bash fuzz/run-short.sh http1
#
# Builds into ${CARGO_TARGET_DIR:-<repo>/target}/fuzz (never fuzz/target), or FUZZ_TARGET_DIR.
set -euo pipefail
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir"
toolchain="$(tr -d '[:space:]' < ../bpf/nightly-toolchain)"
seconds="${FUZZ_SECONDS:-25}"
target_dir="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$fuzz_dir/../target}/fuzz}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(dns http1 http2 kafka)
fi
# -timeout: an input taking this long counts as a hang (libFuzzer's default is 20 minutes).
# -rss_limit_mb: ASan's quarantine alone takes a few hundred MB; past this it is a leak.
fuzzer_flags=(-max_len=4096 -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
# FUZZ_FLAGS: more libFuzzer flags (later ones win), e.g. FUZZ_FLAGS="-dict=http1.dict".
read -r -a extra_flags <<< "${FUZZ_FLAGS:-}"
fuzzer_flags+=("${extra_flags[@]}")

started=$SECONDS
echo "== fuzz: building ${targets[*]} with $toolchain into $target_dir"
# All targets at once: they share every dependency, and cargo builds them in parallel.
cargo "+$toolchain" fuzz build --target-dir "$target_dir"
echo "== fuzz: built in $((SECONDS - started))s"

logs="$target_dir/short-run-logs"
mkdir -p "$logs"

run_one() {
    local target=$1
    # New inputs go to a scratch corpus; the committed seeds are only read.
    local scratch="$target_dir/corpus/$target"
    mkdir -p "$scratch" "artifacts/$target"
    cargo "+$toolchain" fuzz run --target-dir "$target_dir" "$target" "$scratch" "corpus/$target" \
        -- "${fuzzer_flags[@]}" > "$logs/$target.log" 2>&1
}

report() {
    local target=$1 status=$2
    if [ "$status" -eq 0 ]; then
        echo "== fuzz $target: ok, $(grep -m1 -o 'Done [0-9]* runs in [0-9]* second(s)' "$logs/$target.log" || echo 'no summary')"
        return 0
    fi
    echo "== fuzz $target: FAILED (exit $status); last lines of $logs/$target.log:"
    tail -n 60 "$logs/$target.log"
    local artifact
    # Only what this run wrote: older crash files of a developer stay, unreported.
    for artifact in $(find "artifacts/$target" -type f -newer "$logs/$target.start"); do
        echo "-- input: $fuzz_dir/$artifact"
        echo "-- base64: $(base64 -w0 "$artifact")"
        echo "-- replay: cargo +$toolchain fuzz run --target-dir $target_dir $target $fuzz_dir/$artifact"
    done
    return 1
}

failed=0
# Two lanes, one per core: start the next pair once both have finished.
for ((i = 0; i < ${#targets[@]}; i += 2)); do
    pids=()
    lane=("${targets[@]:i:2}")
    for target in "${lane[@]}"; do
        touch "$logs/$target.start"
        run_one "$target" &
        pids+=($!)
    done
    for j in "${!lane[@]}"; do
        status=0
        wait "${pids[$j]}" || status=$?
        report "${lane[$j]}" "$status" || failed=1
    done
done
echo "== fuzz: total $((SECONDS - started))s"
exit "$failed"
