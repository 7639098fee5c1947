#!/usr/bin/env bash
# The random forest against scikit-learn on the shared X-rays (bench/forest_vs_sklearn.py):
# builds and installs, starts a throwaway PostgreSQL, loads the X-rays and prints the table.
#
#   bench/forest_vs_sklearn.sh [GRID ...] > bench/forest_results.md     (default grid: 64)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] && scripts/setup_debian.sh >&2
make -s -j2 >&2 && make -s install >/dev/null
CXR_PG_PORT=${CXR_PG_PORT:-54350} source scripts/pg_throwaway.sh
psql -X -q -c "CREATE EXTENSION cxr_attn"
scripts/load_cxr.sh "${CXR_DATA:-../shared/data/cxr}" >/dev/null
/usr/bin/python3 bench/forest_vs_sklearn.py "$@"
