#!/usr/bin/env bash
# Federated training against training on the pooled rows in one server (issue 14): the same
# real training X-rays, split over 3 sites (PostgreSQL servers of their own on this machine) or
# in one table; cxr_train_federated with R rounds of 1 local epoch against cxr_train with R
# epochs, same seed, batch size and learning rate; both evaluated by cxr_evaluate on the same
# held-out test X-rays at the coordinator. Prints accuracy, sensitivity, specificity, ROC AUC
# and wall time of each.
# Usage: bench/federated_vs_pooled.sh [TRAIN_PER_SPLIT_AND_CLASS (50)] [ROUNDS (3)]
set -euo pipefail
cd "$(dirname "$0")/.."
per=${1:-50}
rounds=${2:-3}
source test/t/tap.inc
need_shared_xrays >/dev/null
source scripts/pg_throwaway.sh
N_SITES=3
source scripts/sites.inc
trap 'cleanup; pg_throwaway_stop' EXIT
fresh_db cxr_coord
q -c "CREATE TABLE pooled (file text PRIMARY KEY, label boolean, split text, source text, image bytea)"
python3 scripts/load_cxr.py "$data" --limit-per-split "$per" |
    q -c "\\copy pooled (file, label, split, source, image) FROM STDIN WITH (FORMAT csv)"
q -c "ALTER TABLE pooled ADD COLUMN site text" \
  -c "UPDATE pooled p SET site = 'site' || (1 + r.n % 3) FROM (SELECT file, row_number() OVER (ORDER BY md5(file)) n FROM pooled) r WHERE r.file = p.file"
for i in 1 2 3; do
    q -c "\\copy (SELECT file, label, split, image FROM pooled WHERE site = 'site$i') TO STDOUT" |
        site_q $i -c "\\copy xrays (file, label, split, image) FROM STDIN"
done
make_coordinator
echo "train images per site: $(q -c "SELECT string_agg(n::text, '/' ORDER BY site) FROM (SELECT site, count(*) n FROM pooled WHERE split = 'train' GROUP BY site) s"); test images: $(q -c "SELECT count(*) FROM pooled WHERE split = 'test'")"
args="batch_size => 16, learning_rate => 1e-4, seed => 3, augment => false"
now() { date +%s.%N; }
t0=$(now)
q -c "SET client_min_messages = warning" -c "SELECT count(*) FROM cxr.cxr_train('pooled_model',
      'SELECT image, label FROM pooled WHERE split = ''train''', epochs => $rounds, $args)" >/dev/null
t1=$(now)
q -c "SET client_min_messages = warning" -c "SELECT count(*) FROM cxr.cxr_train_federated('federated_model', ARRAY['site1', 'site2', 'site3'],
      'SELECT image, label FROM xrays WHERE split = ''train''', rounds => $rounds, $args)" >/dev/null
t2=$(now)
printf "%-34s %8s %11s %11s %8s %9s\n" model accuracy sensitivity specificity roc_auc seconds
for m in pooled_model federated_model; do
    secs=$([ $m = pooled_model ] && echo "$t1 - $t0" | bc -l || echo "$t2 - $t1" | bc -l)
    q -c "SELECT format('%-34s %8s %11s %11s %8s %9s', '$m', round(accuracy::numeric, 3), round(sensitivity::numeric, 3),
                 round(specificity::numeric, 3), round(roc_auc::numeric, 3), round($secs, 1))
          FROM cxr.cxr_evaluate('$m', 'SELECT image, label FROM pooled WHERE split = ''test''')"
done
echo "($rounds epochs on one server; $rounds rounds of 1 local epoch at 3 sites; $args)"
