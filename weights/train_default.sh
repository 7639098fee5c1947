#!/usr/bin/env bash
# Trains the shipped default model: alexnet_attn2 (scaled_dot) with cxr_train on the train split of
# ../shared/data/cxr, validating on the val split, in chunks of CHUNK epochs. Each chunk starts
# from the previous chunk's stored model (init_model) and is exported as a checkpoint, so a long
# run can stop and resume. The test split is never read here.
#
# Usage: weights/train_default.sh [TOTAL_EPOCHS] [CHUNK] [DEADLINE_EPOCH_SECONDS]
#   needs cxr_data.xrays (scripts/load_cxr.sh) and PG* connection variables.
set -euo pipefail
total=${1:-30}
chunk=${2:-5}
deadline=${3:-0}          # unix time after which no new chunk starts (0: none)
here=$(cd "$(dirname "$0")" && pwd)
ckpt=${CKPT_DIR:-$here/checkpoints}
mkdir -p "$ckpt"
train_q="SELECT image, label FROM cxr_data.xrays WHERE split = 'train'"
val_q="SELECT image, label FROM cxr_data.xrays WHERE split = 'val'"

done_epochs=0
prev=""
n=0
# resume after the last finished chunk, if any
while psql -Atq -c "SELECT 1 FROM cxr.current_models WHERE name = 'cxr_ckpt_$((n + 1))'" | grep -q 1; do
    n=$((n + 1)); prev="cxr_ckpt_$n"; done_epochs=$((done_epochs + chunk))
done
while [ "$done_epochs" -lt "$total" ]; do
    if [ "$deadline" -gt 0 ] && [ "$(date +%s)" -gt "$deadline" ]; then
        echo "deadline reached after $done_epochs epochs"; break
    fi
    n=$((n + 1))
    name="cxr_ckpt_$n"
    init=${prev:+"'$prev'"}
    echo "== chunk $n: epochs $((done_epochs + 1))..$((done_epochs + chunk)) from ${prev:-Xavier init} ($(date -u +%H:%M:%S))"
    psql -v ON_ERROR_STOP=1 -c "SET cxr_attn.training_memory = '4GB'" -c "
        SELECT * FROM cxr.cxr_train('$name', \$q\$$train_q\$q\$, 'alexnet_attn2',
            validation_query => \$q\$$val_q\$q\$, epochs => $chunk, batch_size => 64,
            learning_rate => 1e-4, augment => true, seed => $n, deploy => true,
            init_model => ${init:-NULL})"
    psql -Atq -c "SELECT encode(cxr.cxr_model_export('$name'), 'base64')" | base64 -d > "$ckpt/$name.safetensors"
    prev=$name
    done_epochs=$((done_epochs + chunk))
done
psql -c "SELECT m.name, (m.metrics->>'best_epoch')::int AS best_epoch_in_chunk,
                round((m.metrics->>'val_accuracy')::numeric, 4) AS val_accuracy,
                round((m.metrics->>'val_loss')::numeric, 4) AS val_loss
         FROM cxr.models m WHERE m.name LIKE 'cxr_ckpt_%' ORDER BY m.id"
