#!/usr/bin/env bash
# The main job on a fresh Debian machine: packages, build, install, a throwaway PostgreSQL,
# the shared X-rays in a table, scores for the test split with the default model, its test
# metrics, and attention pictures written to demo_out/. The database is cxr_demo: README.md's
# tour runs in it. CXR_PG_KEEP=1 keeps the server afterwards; CXR_PG_PORT sets its port and
# CXR_DATA where the X-rays are (default ../shared/data/cxr).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] && scripts/setup_debian.sh
make -s -j2 >/dev/null
make -s install >/dev/null
source scripts/pg_throwaway.sh
psql -X -q -c "CREATE DATABASE cxr_demo"
export PGDATABASE=cxr_demo
psql -X -q -c "CREATE EXTENSION cxr_attn"
psql -X -Atq -c "SELECT cxr.cxr_kernels()"
data=${CXR_DATA:-../shared/data/cxr}
if [ -f "$data/manifest.csv" ]; then
    scripts/load_cxr.sh "$data"
else
    echo "no X-rays at $data: scoring the project's own synthetic test images instead"
    psql -X -q -c "CREATE SCHEMA cxr_data" \
        -c "CREATE TABLE cxr_data.xrays (file text, label boolean, split text, source text, image cxr.cxr_image)"
    for f in test/data/xray*.png; do
        { printf "INSERT INTO cxr_data.xrays VALUES ('%s', NULL, 'test', 'synthetic', decode('" "$f"
          base64 -w0 "$f"; printf "', 'base64'));\n"; } | psql -X -q
    done
fi
if [ -z "$(psql -X -Atq -c "SELECT 1 FROM cxr.current_models WHERE name = 'default'")" ]; then
    echo "this build ships no default model (see weights/MODEL_CARD.md)"; exit 1
fi
echo "== ten test X-rays, five of each class, scored in SQL"
psql -X -c "SELECT file, label AS covid, round(cxr.covid_predict(image)::numeric, 4) AS p_covid
            FROM (SELECT *, row_number() OVER (PARTITION BY label ORDER BY md5(file)) AS k
                  FROM cxr_data.xrays WHERE split = 'test') t
            WHERE k <= 5 ORDER BY label DESC, file"
if [ -f "$data/manifest.csv" ]; then
    echo "== the default model on the whole test split"
    psql -X -c "SELECT n, round(accuracy::numeric, 4) AS accuracy, round(sensitivity::numeric, 4) AS sensitivity,
                       round(specificity::numeric, 4) AS specificity, round(roc_auc::numeric, 4) AS roc_auc,
                       true_positive AS tp, false_positive AS fp, true_negative AS tn, false_negative AS fn
                FROM cxr.cxr_evaluate('default', \$\$SELECT image, label FROM cxr_data.xrays WHERE split = 'test'\$\$)"
fi
mkdir -p demo_out
# pictures of test X-rays of both classes (synthetic images when there is no data): one figure
# with every attention layer, and a captioned overlay at the X-ray's own resolution for each
pick="SELECT file, image FROM (SELECT *, row_number() OVER (PARTITION BY label ORDER BY md5(file)) AS k
                               FROM cxr_data.xrays WHERE split = 'test') t
      WHERE k <= 3 ORDER BY label DESC NULLS LAST, file"
psql -X -Atq -c "SELECT encode(cxr.attention_figure(array_agg(image ORDER BY file), array_agg(regexp_replace(file, '.*/', '') ORDER BY file)), 'base64')
                 FROM ($pick) p" | base64 -d > demo_out/attention_figure.png
echo "wrote demo_out/attention_figure.png"
psql -X -Atq -F ' ' -c "SELECT file FROM ($pick) p" |
while read -r file; do
    out="demo_out/$(basename "$file" .png)_overlay.png"
    psql -X -Atq -c "SELECT encode(cxr.attention_overlay(image, 4, caption => true), 'base64')
                     FROM cxr_data.xrays WHERE file = '$file'" | base64 -d > "$out"
    echo "wrote $out"
done
