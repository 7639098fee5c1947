#!/usr/bin/env bash
# The real ResNet50 run of docs/table5.md: resnet50 from scratch (models.md's recipe but batch 32
# by default, BATCH=64 needs 15 GB: 117 MB of activations per image; input 224,
# ImageNet normalisation) trained with cxr_train on the shared X-rays' train split, validated on
# val, in calls of one epoch that each resume the previous call's state
# (weights/train_default.sh), then scored once on the test split. Keeps its PostgreSQL in
# $CXR_RUN_DIR (default /var/tmp/cxr_resnet50_run) so that rerunning it continues the run.
#
#   scripts/train_resnet50.sh [TOTAL_EPOCHS] [DEADLINE_UNIX_TIME]   (as root or the postgres user)
#   progress: $CXR_RUN_DIR/train.log; the figures: $CXR_RUN_DIR/result.txt
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-30}
deadline=${2:-0}
dir=${CXR_RUN_DIR:-/var/tmp/cxr_resnet50_run}
pg_bin=/usr/lib/postgresql/15/bin
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$dir" && chmod 777 "$dir"
export PGHOST=$dir PGPORT=${CXR_RUN_PORT:-54700} PGUSER=postgres PGDATABASE=postgres
if [ ! -d "$dir/data" ]; then
    run_pg "$pg_bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
fi
run_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "-p $PGPORT -k $dir -c listen_addresses=''" \
    status >/dev/null 2>&1 ||
    run_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $PGPORT -k $dir -c listen_addresses=''" start >/dev/null
psql -X -q -c "CREATE EXTENSION IF NOT EXISTS cxr_attn"
[ "$(psql -X -Atq -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'cxr_data'")" = 1 ] ||
    scripts/load_cxr.sh >/dev/null
start=$(date +%s)
ARCH=resnet50 BATCH=${BATCH:-32} TRAINING_MEMORY=${TRAINING_MEMORY:-12GB} RUN_PREFIX=resnet50_run CKPT_DIR=$dir/checkpoints \
    weights/train_default.sh "$total" 1 "$deadline" >> "$dir/train.log" 2>&1
last=$(psql -X -Atq -c "SELECT name FROM cxr.current_models WHERE name LIKE 'resnet50_run_%' ORDER BY model_id DESC LIMIT 1")
{
    echo "run: resnet50 from scratch, input 224, batch ${BATCH:-32}, Adam 1e-4, augmentation; model $last"
    psql -X -Atq -c "SELECT 'epochs ' || max(epoch) || ', training seconds ' || round(sum(seconds))
                     || ', best val epoch ' || (SELECT metrics->>'best_epoch' FROM cxr.models WHERE name = '$last')
                     || ', val accuracy ' || round((SELECT (metrics->>'val_accuracy')::numeric FROM cxr.models WHERE name = '$last'), 4)
                     FROM cxr.training_history h JOIN cxr.current_models c USING (model_id) WHERE c.name = '$last'"
    psql -X -Atq -c "SELECT 'test: n ' || n || ', accuracy ' || round(accuracy::numeric, 4) || ', sensitivity '
                     || round(sensitivity::numeric, 4) || ', specificity ' || round(specificity::numeric, 4)
                     || ', roc_auc ' || round(roc_auc::numeric, 4)
                     FROM cxr.cxr_evaluate('$last', \$\$SELECT image, label FROM cxr_data.xrays WHERE split = 'test'\$\$)"
    echo "wall time of this call: $(( $(date +%s) - start )) s"
} | tee "$dir/result.txt"
