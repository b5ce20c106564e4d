#!/usr/bin/env bash
# Runs one fuzz target for a chosen number of seconds on one core.
#
#     fuzz/run.sh TARGET [SECONDS]    (SECONDS defaults to 300)
#
# libFuzzer starts from the committed seeds in corpus/TARGET and the inputs in
# regressions/TARGET, and writes the inputs it finds into work/TARGET, which git ignores, so a
# run never changes the committed corpus. A crash stops the run and is saved under
# artifacts/TARGET/. FUZZ_SANITIZER chooses cargo fuzz's sanitizer (address by default,
# or none).
set -euo pipefail
cd "$(dirname "$0")"

target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
seconds=${2:-300}
sanitizer=${FUZZ_SANITIZER:-address}

corpora=("work/$target" "corpus/$target")
if [ -d "regressions/$target" ]; then
    corpora+=("regressions/$target")
fi
mkdir -p "work/$target"

# cargo fuzz passes flags that only nightly rustc takes, and RUSTC_BOOTSTRAP=1 lets stable
# rustc take them too.
RUSTC_BOOTSTRAP=1 exec cargo fuzz run --sanitizer "$sanitizer" "$target" "${corpora[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
