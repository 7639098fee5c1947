#!/usr/bin/env bash
# Runs the pg_regress and TAP suites against a PostgreSQL whose every backend runs under
# valgrind's memcheck, and counts invalid reads and writes. Slow (an hour or more on 2 cores):
# CI does not run it; run it after changes to memory lifetimes (the model cache, holds, SPI).
#
#   scripts/valgrind.sh [TESTS...]   default: every pg_regress test and every TAP test
#   CXR_VALGRIND_UNDEF=no            addressability only (invalid reads, writes and frees, not
#                                    uses of uninitialised values): about twice as fast
#
# The training scripts take longest (train's 8-epoch run alone took over an hour of valgrind
# time): train and train_resume stand alone, so run them at once on two servers, each with its
# own CXR_PG_PORT and CXR_VALGRIND_OUT (start the second after the first has installed).
#
# Prints, per kind, the errors found and how many of them have cxr_attn.so on their stack, and
# leaves the logs in $CXR_VALGRIND_OUT (default /tmp/cxr_valgrind).
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] && { command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null; }
out=${CXR_VALGRIND_OUT:-/tmp/cxr_valgrind}
rm -rf "$out" && mkdir -p "$out" && chmod 777 "$out"
wrapper=$out/postgres
# Memory errors only (leaks are PostgreSQL's business: it frees by memory context); OpenBLAS is
# loaded with dlopen and stays; the logs name every backend by pid; fair scheduling, because
# OpenBLAS threads spin while they wait for each other.
# OpenBLAS's SSE3 kernels (Prescott): valgrind emulates AVX2/FMA so slowly that one forward
# pass takes 55 s with the Haswell kernels and 4 s with these (cxr_cli predict, measured here).
cat > "$wrapper" <<WRAP
#!/bin/sh
export OPENBLAS_CORETYPE=${CXR_VALGRIND_CORETYPE:-Prescott}
exec valgrind --quiet --fair-sched=try --trace-children=yes --leak-check=no --error-limit=no --num-callers=30 \
    --undef-value-errors=${CXR_VALGRIND_UNDEF:-yes} --suppressions=$PWD/scripts/valgrind.supp \
    --log-file=$out/vg.%p.log /usr/lib/postgresql/15/bin/postgres "\$@"
WRAP
chmod 755 "$wrapper"
export PYTHON=/usr/bin/python3
make -s -j2 && make -s install >/dev/null
source scripts/pg_throwaway.sh
# restart the throwaway server with every process under valgrind (slow start: wait longer)
run_pg /usr/lib/postgresql/15/bin/pg_ctl -D "$pg_dir/data" -m fast stop >/dev/null
run_pg /usr/lib/postgresql/15/bin/pg_ctl -D "$pg_dir/data" -l "$pg_dir/log" \
    -p "$wrapper" -w -t 600 -o "-p $PGPORT -k $pg_dir -c listen_addresses='' -c max_parallel_workers_per_gather=2" start >/dev/null
tests=("$@")
if [ ${#tests[@]} = 0 ]; then
    tests=($(sed -n 's/^REGRESS = //p' Makefile) test/t/*.sh)
fi
regress=() tap=()
for t in "${tests[@]}"; do case $t in *.sh) tap+=("$t") ;; *) regress+=("$t") ;; esac; done
[ ${#regress[@]} -gt 0 ] && { make -s installcheck REGRESS="${regress[*]}" || cat regression.diffs; }
[ ${#tap[@]} -gt 0 ] && prove --exec bash "${tap[@]}"
run_pg /usr/lib/postgresql/15/bin/pg_ctl -D "$pg_dir/data" -m fast -t 600 stop >/dev/null
echo "== valgrind: ${#regress[@]} pg_regress and ${#tap[@]} TAP tests, $(ls "$out"/vg.*.log | wc -l) processes"
for kind in "Invalid read" "Invalid write" "Invalid free" "uninitialised value" "Mismatched free"; do
    total=$(cat "$out"/vg.*.log | grep -c "$kind")
    ours=$(awk -v k="$kind" '/^==[0-9]+== [A-Z]/ {inerr = index($0, k) > 0; if (inerr) n++} inerr && /cxr_attn\.so/ {if (!seen[n]++) c++} END {print c + 0}' "$out"/vg.*.log)
    echo "$kind: $total (with cxr_attn.so on the stack: $ours)"
done
