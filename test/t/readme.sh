#!/usr/bin/env bash
# Every SQL example of the README runs as written, against the database scripts/demo.sh builds
# (the shared X-rays in cxr_data.xrays of database cxr_demo), and gives the output the README
# shows. Needs the shared X-rays, like the demo.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/t/tap.inc
need_shared_xrays
cleanup() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS cxr_demo" \
        -c "DROP ROLE IF EXISTS radiology" -c "DROP ROLE IF EXISTS data_team" \
        -c "ALTER SYSTEM RESET session_preload_libraries" 2>/dev/null
    rm -rf "$work"
}
work=$(mktemp -d)
chmod 777 "$work"
trap cleanup EXIT
psql -X -q -c "DROP ROLE IF EXISTS radiology" -c "DROP ROLE IF EXISTS data_team"
fresh_db cxr_demo
scripts/load_cxr.sh "$data" >/dev/null
python3 test/t/readme_sql.py README.md "$work"
