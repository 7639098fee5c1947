#!/usr/bin/env bash
# After training (weights/MODEL_CARD.md says which calls): picks the checkpoint with the best
# validation accuracy (the test split is not looked at to choose), writes it to
# weights/cxr_attn_default.safetensors,
# deploys it as "default" in the database, and prints its validation and test metrics with
# cxr_evaluate (the figures quoted in weights/MODEL_CARD.md).
#
# Usage: weights/finish_default.sh [LIKE_PATTERNS]   (comma-separated; default cxr_ckpt_%,cxr_long_%)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
patterns=${1:-cxr_ckpt_%,cxr_long_%}
like=$(echo "$patterns" | sed "s/^/name LIKE '/; s/,/' OR name LIKE '/g; s/\$/'/")
best=$(psql -X -Atq -c "SELECT name FROM cxr.models WHERE $like
                        ORDER BY (metrics->>'val_accuracy')::float8 DESC,
                                 (metrics->>'val_loss')::float8, id LIMIT 1")
# every call considered, and the training time they took (the model card's figures)
psql -X -c "SELECT name, (metrics->>'epochs')::int AS epochs, (metrics->>'best_epoch')::int AS best_epoch,
                   round((metrics->>'val_accuracy')::numeric, 4) AS val_accuracy,
                   round((metrics->>'seconds')::numeric / 60, 1) AS minutes,
                   round(sum((metrics->>'seconds')::numeric) OVER () / 60, 1) AS total_minutes,
                   sum((metrics->>'epochs')::int) OVER () AS total_epochs
            FROM cxr.models WHERE $like ORDER BY id"
echo "best checkpoint by validation accuracy: $best"
psql -X -Atq -c "SELECT encode(cxr.cxr_model_export('$best'), 'base64')" | base64 -d > "$here/cxr_attn_default.safetensors"
psql -X -q -c "SELECT cxr.cxr_model_deploy('default', (SELECT model_id FROM cxr.current_models WHERE name = '$best'))" \
    2>/dev/null || psql -X -q -c "SELECT cxr.cxr_model_import('default', cxr.cxr_model_export('$best'))" >/dev/null
for split in val test; do
    echo "== $split split"
    psql -X -c "SELECT n, round(accuracy::numeric, 4) AS accuracy, round(sensitivity::numeric, 4) AS sensitivity,
                       round(specificity::numeric, 4) AS specificity, round(\"precision\"::numeric, 4) AS precision,
                       round(f1::numeric, 4) AS f1, round(roc_auc::numeric, 4) AS roc_auc,
                       true_positive AS tp, false_positive AS fp, true_negative AS tn, false_negative AS fn
                FROM cxr.cxr_evaluate('default', \$\$SELECT image, label FROM cxr_data.xrays WHERE split = '$split'\$\$)"
done
sha256sum "$here/cxr_attn_default.safetensors"
