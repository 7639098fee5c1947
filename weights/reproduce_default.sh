#!/usr/bin/env bash
# The exact cxr_train calls that produced the shipped weights/cxr_attn_default.safetensors (see
# weights/MODEL_CARD.md), in order; then weights/finish_default.sh chose among their models by
# validation accuracy. Rerunning a stage that has its model already skips it. Same seeds, same
# thread count (2) and the same machine give the same bytes.
#
#   stage 1: seven 4-epoch calls cxr_ckpt_1..7, each from the previous call's stored (best)
#            epoch with init_model, seeds 1..7 (each call restarts Adam)
#   stage 2: one 28-epoch call cxr_long_1 from cxr_ckpt_7, seed 8
#   stage 3: one 6-epoch call cxr_long_2 from cxr_long_1, seed 9
#
# Needs cxr_data.xrays (scripts/load_cxr.sh) and PG* connection variables. For a new long run,
# use weights/train_default.sh, which resumes one run across calls instead.
set -euo pipefail
train_q="SELECT image, label FROM cxr_data.xrays WHERE split = 'train'"
val_q="SELECT image, label FROM cxr_data.xrays WHERE split = 'val'"
export PGOPTIONS="${PGOPTIONS:-} -c cxr_attn.training_threads=2 -c cxr_attn.training_memory=4GB"

call() {  # NAME EPOCHS SEED INIT_MODEL
    if [ "$(psql -X -Atq -c "SELECT count(*) FROM cxr.current_models WHERE name = '$1'")" = 1 ]; then
        echo "== $1 exists, skipped"; return
    fi
    local from=NULL
    [ -n "$4" ] && from="'$4'"
    echo "== $1: $2 epochs, seed $3, from ${4:-Xavier init} ($(date -u +%H:%M:%S))"
    psql -X -v ON_ERROR_STOP=1 -c "
        SELECT * FROM cxr.cxr_train('$1', \$q\$$train_q\$q\$, 'alexnet_attn2',
            validation_query => \$q\$$val_q\$q\$, epochs => $2, batch_size => 64,
            learning_rate => 1e-4, augment => true, seed => $3, deploy => true,
            init_model => $from)"
}

prev=""
for n in 1 2 3 4 5 6 7; do
    call "cxr_ckpt_$n" 4 "$n" "$prev"
    prev="cxr_ckpt_$n"
done
call cxr_long_1 28 8 cxr_ckpt_7
call cxr_long_2 6 9 cxr_long_1
"$(dirname "$0")/finish_default.sh" 'cxr_ckpt_%,cxr_long_%'
