#!/usr/bin/env bash
# The current core against an earlier commit's, on the shipped model and the shared X-rays:
# the largest difference in probability and in attention maps (layers 3 and 4), image by image.
# Builds the earlier commit's cxr_cli in a temporary worktree. With SPEED=1 also runs both cores'
# bench_core (bench/run.sh's C side) on the AlexNet family, one after the other
# (SPEED_NETS="resnet50" SPEED_ROUNDS=2: other networks, in turn more than once).
#
#   bench/compare_cores.sh [REV] [N]     default: HEAD (the last commit), the first N=200 test
#                                        X-rays of the manifest (682: all of them)
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD}
n=${2:-200}
data=../shared/data/cxr
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/old" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/old" "$rev"
make -s -C "$tmp/old" test/bin/cxr_cli >/dev/null
make -s test/bin/cxr_cli >/dev/null
model=weights/cxr_attn_default.safetensors
files=$(awk -F, -v n="$n" -v d="$data" '$3 == "test" && c++ < n {print d "/" $1}' "$data/manifest.csv")
"$tmp/old/test/bin/cxr_cli" predict "$model" $files > "$tmp/old.txt"
test/bin/cxr_cli predict "$model" $files > "$tmp/new.txt"
for f in $(awk 'NR <= 20' <<< "$files"); do
    for layer in 3 4; do
        "$tmp/old/test/bin/cxr_cli" attention "$model" "$f" $layer >> "$tmp/old_maps.txt"
        test/bin/cxr_cli attention "$model" "$f" $layer >> "$tmp/new_maps.txt"
    done
done
python3 - "$tmp" "$rev" "$n" <<'PY'
import sys
d, rev, n = sys.argv[1:]
def nums(p):
    return [float(x) for line in open(p) for x in line.split()]
po, pn = nums(f"{d}/old.txt"), nums(f"{d}/new.txt")
mo, mn = nums(f"{d}/old_maps.txt"), nums(f"{d}/new_maps.txt")
assert len(po) == len(pn) == int(n) and len(mo) == len(mn) > 0
dp = max(abs(a - b) for a, b in zip(po, pn))
dm = max(abs(a - b) for a, b in zip(mo, mn))
print(f"{n} X-rays, shipped model, core of {rev} vs this tree: max |probability difference| {dp:.3g}, "
      f"identical {sum(a == b for a, b in zip(po, pn))}/{n}; attention maps (20 X-rays, layers 3 and 4): "
      f"max |difference| {dm:.3g}")
PY

# SPEED=1: the two cores' bench_core on the AlexNet family (or SPEED_NETS), back to back on this
# machine, SPEED_ROUNDS times (default 1) in turn; BENCH_NO_TRAIN=1 leaves training out
if [ "${SPEED:-0}" = 1 ]; then
    for tree in "$tmp/old" .; do
        gcc -std=c11 -D_GNU_SOURCE -O2 -I"$tree/src/core" -o "$tmp/bench_$(basename "$tree")" \
            "$tree/bench/bench_core.c" "$tree"/src/core/*.c -I/usr/include/openjpeg-2.5 -lpng -ljpeg -lopenjp2 -lz -ldl -lm -lpthread
    done
    for t in 1 2; do
        for round in $(seq "${SPEED_ROUNDS:-1}"); do
        for side in old .; do
            label=$([ "$side" = old ] && echo "$rev" || echo "this tree")
            # shellcheck disable=SC2086
            "$tmp/bench_$(basename "$side")" "$t" ${SPEED_NETS:-alexnet alexnet_attn1 alexnet_attn2 alexnet_attn3} |
                awk -v l="$label" -v t="$t" '$1 == "C" && ($3 == "single_ms" || $3 == "batch32_img_s" || $3 == "train64_img_s" || $3 == "train_img_s") {print "threads " t ", " l ": " $2 " " $3 " " $4}'
        done
        done
    done
fi
