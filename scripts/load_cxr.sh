#!/usr/bin/env bash
# Loads the shared X-rays into cxr_data.xrays (file, label, split, source, image cxr.cxr_image),
# and DICOM copies of 8 test X-rays into cxr_data.archive (file, sop_instance_uid, label, image),
# as a PACS export would hold them (scripts/load_dicom.py).
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
psql -v ON_ERROR_STOP=1 -q <<'SQL'
DROP TABLE IF EXISTS cxr_data.archive;
CREATE TABLE cxr_data.archive (
    file             text PRIMARY KEY,   -- the PNG it was made from, in cxr_data.xrays
    sop_instance_uid text NOT NULL UNIQUE,
    label            boolean NOT NULL,
    image            cxr.cxr_image NOT NULL
);
SQL
/usr/bin/python3 "$here/load_dicom.py" "$data" 4 |
    psql -v ON_ERROR_STOP=1 -q -c "\\copy cxr_data.archive (file, sop_instance_uid, label, image) FROM STDIN WITH (FORMAT csv)"
psql -q -c "ANALYZE cxr_data.xrays" -c "SELECT split, label, count(*) FROM cxr_data.xrays GROUP BY 1, 2 ORDER BY 1, 2"
