#!/usr/bin/env bash
# Decode time per image for PNG, JPEG and each DICOM transfer syntax at chest X-ray size
# (2,500 px square, 12 bits), against pydicom and DCMTK in the same run, and the share of
# scoring that decoding takes (bench/decode_bench.py says how each figure is taken).
#   bench/decode_bench.sh [SIDE] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
make -s test/bin/cxr_cli >/dev/null
work=${CXR_BENCH_WORK:-$(mktemp -d)}
trap 'rm -rf "$work"' EXIT
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores; $(date -u +%F)"
OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/decode_bench.py test/bin/cxr_cli \
    weights/cxr_attn_default.safetensors "$work" "${1:-2500}" "${2:-3}"
