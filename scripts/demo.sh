#!/usr/bin/env bash
# The main job on a fresh Debian machine: packages, build, install, a throwaway PostgreSQL,
# the shared X-rays in a table, scores for the test split with the default model, its test
# metrics, and attention overlays written to demo_out/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] && scripts/setup_debian.sh
make -s -j2 >/dev/null
make -s install >/dev/null
source scripts/pg_throwaway.sh
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
echo "== ten test X-rays, scored in SQL"
psql -X -c "SELECT file, label AS covid, round(cxr.covid_predict(image)::numeric, 4) AS p_covid
            FROM cxr_data.xrays WHERE split = 'test' ORDER BY file LIMIT 10"
if [ -f "$data/manifest.csv" ]; then
    echo "== the default model on the whole test split"
    psql -X -c "SELECT n, round(accuracy::numeric, 4) AS accuracy, round(sensitivity::numeric, 4) AS sensitivity,
                       round(specificity::numeric, 4) AS specificity, round(roc_auc::numeric, 4) AS roc_auc,
                       true_positive AS tp, false_positive AS fp, true_negative AS tn, false_negative AS fn
                FROM cxr.cxr_evaluate('default', \$\$SELECT image, label FROM cxr_data.xrays WHERE split = 'test'\$\$)"
fi
mkdir -p demo_out
psql -X -Atq -F ' ' -c "(SELECT file FROM cxr_data.xrays WHERE split = 'test' AND label ORDER BY file LIMIT 2)
                        UNION ALL
                        (SELECT file FROM cxr_data.xrays WHERE split = 'test' AND NOT label ORDER BY file LIMIT 2)
                        UNION ALL
                        (SELECT file FROM cxr_data.xrays WHERE label IS NULL LIMIT 4)" |
while read -r file; do
    for layer in 3 4; do
        out="demo_out/$(basename "$file" .png)_layer$layer.png"
        psql -X -Atq -c "SELECT encode(cxr.attention_overlay(image, $layer), 'base64')
                         FROM cxr_data.xrays WHERE file = '$file'" | base64 -d > "$out"
        echo "wrote $out"
    done
done
