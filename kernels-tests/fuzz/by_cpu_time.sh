#!/usr/bin/env bash
# by_cpu_time.sh CPU_SECONDS TARGET...: fuzz each target until its process has used
# CPU_SECONDS of CPU time (user + sys, read from /proc), then stop it with SIGINT so that
# libFuzzer prints its final stats. libFuzzer's own -max_total_time counts wall time, which on
# a shared machine is not the CPU the issue asks for.
#
# It runs the targets' binaries as `cargo fuzz build` left them (build them first:
# RUSTC_BOOTSTRAP=1 cargo fuzz build --fuzz-dir kernels-tests/fuzz), so that editing src/
# meanwhile does not trigger a rebuild. Logs append to $FUZZ_LOGS/<target>.log (default
# target/fuzz-logs), one line per run to $FUZZ_LOGS/times.txt (rc 72: stopped at the budget,
# libFuzzer's interrupted exit code); crashes land in
# $FUZZ_LOGS/artifacts/. libFuzzer's -timeout (a unit taking longer is reported) counts wall
# time too: FUZZ_TIMEOUT (default 20 s) raises it for a fuzzer at nice 19 on a busy machine,
# where the image loader's largest legal JPEGs (≈ 55 M pixels, 10 s under ASan alone) wait
# for the core. New inputs go into corpus/<target>/: merge them afterwards,
#   bin/T merged/ corpus/T -merge=1
# and keep the committed seeds and crash inputs (git checkout HEAD -- corpus/T).
set -uo pipefail
cd "$(dirname "$0")/../.."
budget=$1
shift
bin=kernels-tests/fuzz/target/x86_64-unknown-linux-gnu/release
logs=${FUZZ_LOGS:-target/fuzz-logs}
mkdir -p "$logs/artifacts"
tck=$(getconf CLK_TCK)
for t in "$@"; do
  [ -x "$bin/$t" ] || { echo "no binary $bin/$t: run cargo fuzz build first" >&2; exit 1; }
  start=$(date +%s)
  "$bin/$t" "kernels-tests/fuzz/corpus/$t" -rss_limit_mb=3072 "-timeout=${FUZZ_TIMEOUT:-20}" -print_final_stats=1 \
    "-artifact_prefix=$logs/artifacts/$t-" >>"$logs/$t.log" 2>&1 &
  pid=$!
  cpu=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 10
    read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null) || break
    cpu=$(((ut + st) / tck))
    [ "$cpu" -ge "$budget" ] && kill -INT "$pid"
  done
  wait "$pid"
  rc=$?
  echo "$t cpu=${cpu}s wall=$(($(date +%s) - start))s rc=$rc end=$(date -u +%FT%TZ)" >>"$logs/times.txt"
done
