#!/usr/bin/env bash
# Loads the shared X-rays into cxr_data.xrays (file, label, split, source, image cxr.cxr_image).
# Usage: scripts/load_cxr.sh [DATA_DIR] [PER_SPLIT_AND_CLASS_LIMIT]   (psql connection from PG* env)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${1:-$here/../../shared/data/cxr}
limit=${2:-}
psql -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE SCHEMA IF NOT EXISTS cxr_data;
DROP TABLE IF EXISTS cxr_data.xrays;
CREATE TABLE cxr_data.xrays (
    file   text PRIMARY KEY,
    label  boolean NOT NULL,   -- true = COVID-19
    split  text NOT NULL,      -- train / val / test
    source text,
    image  cxr.cxr_image NOT NULL
);
SQL
python3 "$here/load_cxr.py" "$data" ${limit:+--limit-per-split "$limit"} |
    psql -v ON_ERROR_STOP=1 -q -c "\\copy cxr_data.xrays (file, label, split, source, image) FROM STDIN WITH (FORMAT csv)"
psql -q -c "ANALYZE cxr_data.xrays" -c "SELECT split, label, count(*) FROM cxr_data.xrays GROUP BY 1, 2 ORDER BY 1, 2"
