#!/usr/bin/env bash
# Trains alexnet_attn2 (scaled_dot; ARCH=resnet50 for another network) with cxr_train on the
# train split of ../shared/data/cxr,
# validating on the val split, as one run split into calls of CHUNK epochs: each call resumes
# the previous one's stored state (resume => true), so the result equals one uninterrupted run,
# and each call's model is exported as a checkpoint. Rerunning the script continues after the
# last finished call. The test split is never read here.
#
# Usage: weights/train_default.sh [TOTAL_EPOCHS] [CHUNK] [DEADLINE_UNIX_TIME] [INIT_MODEL]
#   INIT_MODEL (optional): start the run from that model's weights instead of Xavier init.
#   Needs cxr_data.xrays (scripts/load_cxr.sh) and PG* connection variables.
#   ARCH (alexnet_attn2), BATCH (64), TRAINING_MEMORY (4GB) and TRAINABLE (all) set the run.
#   How the shipped model was actually produced is in weights/MODEL_CARD.md.
set -euo pipefail
total=${1:-60}
chunk=${2:-4}
deadline=${3:-0}          # unix time after which no new call starts (0: none)
init=${4:-}
prefix=${RUN_PREFIX:-cxr_run}
arch=${ARCH:-alexnet_attn2}
batch=${BATCH:-64}
memory=${TRAINING_MEMORY:-4GB}
trainable=${TRAINABLE:+, trainable => '$TRAINABLE'}
here=$(cd "$(dirname "$0")" && pwd)
ckpt=${CKPT_DIR:-$here/checkpoints}
mkdir -p "$ckpt"
train_q="SELECT image, label FROM cxr_data.xrays WHERE split = 'train'"
val_q="SELECT image, label FROM cxr_data.xrays WHERE split = 'val'"

done_epochs=0
prev=""
n=0
# continue after the last finished call, if any
while [ "$(psql -X -Atq -c "SELECT count(*) FROM cxr.current_models WHERE name = '${prefix}_$((n + 1))'")" = 1 ]; do
    n=$((n + 1)); prev="${prefix}_$n"
done
[ -n "$prev" ] && done_epochs=$(psql -X -Atq -c "SELECT max(h.epoch) FROM cxr.training_history h
    JOIN cxr.current_models c USING (model_id) WHERE c.name = '$prev'")
while [ "$done_epochs" -lt "$total" ]; do
    if [ "$deadline" -gt 0 ] && [ "$(date +%s)" -gt "$deadline" ]; then
        echo "deadline reached after $done_epochs epochs"; break
    fi
    n=$((n + 1))
    name="${prefix}_$n"
    epochs=$(( total - done_epochs < chunk ? total - done_epochs : chunk ))
    if [ -n "$prev" ]; then
        from="init_model => '$prev', resume => true"
    elif [ -n "$init" ]; then
        from="init_model => '$init'"
    else
        from="init_model => NULL"
    fi
    echo "== call $n: epochs $((done_epochs + 1))..$((done_epochs + epochs)), $from ($(date -u +%H:%M:%S))"
    psql -X -v ON_ERROR_STOP=1 -c "SET cxr_attn.training_memory = '$memory'" -c "
        SELECT * FROM cxr.cxr_train('$name', \$q\$$train_q\$q\$, '$arch',
            validation_query => \$q\$$val_q\$q\$, epochs => $epochs, batch_size => $batch,
            learning_rate => 1e-4, augment => true, seed => 1, deploy => true, $from$trainable)"
    psql -X -Atq -c "SELECT encode(cxr.cxr_model_export('$name'), 'base64')" | base64 -d > "$ckpt/$name.safetensors"
    prev=$name
    done_epochs=$((done_epochs + epochs))
done
# the last call's model is the run's best validation epoch
psql -X -c "SELECT m.name, (m.metrics->>'first_epoch')::int AS first_epoch,
                (m.metrics->>'best_epoch')::int AS run_best_epoch,
                round((m.metrics->>'val_accuracy')::numeric, 4) AS val_accuracy,
                round((m.metrics->>'val_loss')::numeric, 4) AS val_loss
         FROM cxr.models m WHERE m.name LIKE '${prefix}_%' ORDER BY m.id"
