#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine (run as root, or as a user who can install
# the packages): packages, build with warnings as errors, the core's unit tests against PyTorch,
# install, a throwaway PostgreSQL, pg_regress, and the TAP tests.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] && scripts/setup_debian.sh
export PYTHON=/usr/bin/python3
make -s clean
make -j2
echo "== core unit tests (PyTorch fixtures are generated first) [${SECONDS} s]"
make -s check-core
echo "== install [${SECONDS} s]"
make -s install >/dev/null
source scripts/pg_throwaway.sh
echo "== pg_regress [${SECONDS} s]"
if ! make -s installcheck; then
    cat regression.diffs || true
    exit 1
fi
echo "== TAP tests [${SECONDS} s]"
prove -v --timer --exec bash test/t/*.sh
echo "ALL TESTS PASSED [${SECONDS} s]"
