#!/usr/bin/env bash
# The random forest in SQL, on a few hundred shared X-rays: forests fitted by scikit-learn on
# the features cxr.cxr_image_pixels exports score in SQL as predict_proba does (1e-6); a forest
# fitted by cxr_train scores, evaluates, explains itself, round-trips through export/import,
# is the same whatever the thread count, scores the same under a parallel plan, answers
# cancel; and bad input gets a clear ERROR with its SQLSTATE.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/t/tap.inc
need_shared_xrays
echo "1..16"
tmp=$(mktemp -d)
chmod 755 "$tmp"
fresh_db cxr_forest
scripts/load_cxr.sh "$data" 40 >/dev/null            # 40 per split and class: 240 images
# state SQL: the SQLSTATE of the statement's error ("" when it succeeds)
state() { psql -X -q -v VERBOSITY=sqlstate -c "SET client_min_messages = warning" -c "$1" 2>&1 >/dev/null | sed -n 's/^ERROR: *//p'; }
train_q='$$SELECT image, label FROM cxr_data.xrays WHERE split = '"'train'"'$$'
test_q='$$SELECT image, label FROM cxr_data.xrays WHERE split = '"'test'"'$$'

# scikit-learn's forests, fitted on the features SQL exports, imported
q -c "COPY (SELECT file, split, label::int, array_to_string(cxr.cxr_image_pixels(image, 32), ' ')
            FROM cxr_data.xrays ORDER BY file) TO STDOUT" > "$tmp/features.tsv"
/usr/bin/python3 test/ref/forest_reference.py "$tmp/features.tsv" 32 "$tmp"
ok $? "scikit-learn fits two forests on $(wc -l < "$tmp/features.tsv") exported feature rows and they convert"
for k in a b; do
    import_model "sk_$k" "$tmp/$k.safetensors"
    q -c "SELECT file, cxr.covid_predict(image, 'sk_$k') FROM cxr_data.xrays WHERE split = 'test'" | tr '|' '\t' > "$tmp/$k.sql"
    worst=$(/usr/bin/python3 - "$tmp/$k.proba" "$tmp/$k.sql" <<'PY'
import sys
want = dict(l.split("\t") for l in open(sys.argv[1]).read().splitlines())
got = dict(l.split("\t") for l in open(sys.argv[2]).read().splitlines())
assert want.keys() == got.keys() and len(want) > 0, (len(want), len(got))
print(max(abs(float(want[f]) - float(got[f])) for f in want))
PY
)
    echo "# forest $k: worst |SQL - predict_proba| over $(wc -l < "$tmp/$k.proba") test X-rays: $worst"
    /usr/bin/python3 -c "import sys; sys.exit(not float('$worst') <= 1e-6)" 2>/dev/null
    ok $? "scikit-learn forest $k scores in SQL as predict_proba (worst difference $worst <= 1e-6)"
done

# a forest fitted in SQL
rows=$(q -c "SET client_min_messages = warning" -c "SELECT epoch, round(train_accuracy::numeric, 2), val_accuracy IS NOT NULL
              FROM cxr.cxr_train('rf', $train_q, 'random_forest',
                   validation_query => \$\$SELECT image, label FROM cxr_data.xrays WHERE split = 'val'\$\$,
                   seed => 3, params => '{\"n_estimators\": 30, \"feature_grid\": 32}')")
echo "# cxr_train returned: $rows"
[ "$rows" = "1|1.00|t" ]
ok $? "cxr_train fits a random_forest: one history row, the training set fitted, a validation accuracy"
acc=$(q -c "SELECT n || ' ' || accuracy FROM cxr.cxr_evaluate('rf', $test_q)")
echo "# cxr_evaluate on the test split: n accuracy = $acc"
/usr/bin/python3 -c "n, a = '$acc'.split(); import sys; sys.exit(not (int(n) == 80 and float(a) >= 0.7))"
ok $? "cxr_evaluate scores it on the 80 test X-rays, accuracy >= 0.7 ($acc)"
imp=$(q -c "SELECT array_dims(m) || ' ' || round((SELECT sum(x) FROM unnest(m) x)::numeric, 4) || ' ' ||
                   (SELECT bool_and(x >= 0) FROM unnest(m) x)
            FROM cxr.feature_importance('rf') m")
[ "$imp" = "[1:32][1:32] 1.0000 true" ]
ok $? "feature_importance is a 32 x 32 grid of non-negative weights summing to 1 ($imp)"
png=$(q -c "SELECT encode(substr(cxr.feature_importance_overlay(image, 'rf', true), 1, 8), 'hex') FROM cxr_data.xrays LIMIT 1")
[ "$png" = 89504e470d0a1a0a ]
ok $? "feature_importance_overlay draws a PNG over the X-ray"
[ "$(state "SELECT cxr.attention_map(image, 2, 'rf') FROM cxr_data.xrays LIMIT 1")" = 0A000 ] &&
    [ "$(state "SELECT cxr.feature_importance('default')")" = 0A000 ]
ok $? "attention_map on a forest, and feature_importance on a network, are 0A000 errors"

# the same forest whatever the threads; export and import keep it
for t in 1 2; do
    q -c "SET client_min_messages = warning" -c "SET cxr_attn.training_threads = $t" \
      -c "SELECT count(*) FROM cxr.cxr_train('rf_t$t', $train_q, 'random_forest', seed => 3,
                   params => '{\"n_estimators\": 30, \"feature_grid\": 32}')" >/dev/null
done
[ "$(q -c "SELECT cxr.cxr_model_export('rf_t1') = cxr.cxr_model_export('rf_t2')
                  AND cxr.cxr_model_export('rf_t1') = cxr.cxr_model_export('rf')")" = t ]
ok $? "one seed gives the same forest, bit for bit, on 1 or 2 threads (and with a validation query)"
q -c "SELECT cxr.cxr_model_import('rf_back', cxr.cxr_model_export('rf'))" >/dev/null
[ "$(q -c "SELECT count(*) FROM cxr_data.xrays WHERE cxr.covid_predict(image, 'rf') IS DISTINCT FROM cxr.covid_predict(image, 'rf_back')")" = 0 ] &&
    [ "$(q -c "SELECT metadata::text FROM cxr.models WHERE name = 'rf_back'")" = '{"arch": "random_forest", "input_size": 32, "n_estimators": 30}' ]
ok $? "an exported and re-imported forest scores every X-ray the same; the registry shows its grid and trees"
q -c "CREATE TABLE serial AS SELECT file, cxr.covid_predict(image, 'rf') AS p FROM cxr_data.xrays"
q -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" -c "SET min_parallel_table_scan_size = 0" \
  -c "SET max_parallel_workers_per_gather = 2" \
  -c "CREATE TABLE par AS SELECT file, cxr.covid_predict(image, 'rf') AS p FROM cxr_data.xrays"
[ "$(q -c "SELECT count(*) FROM serial s JOIN par p USING (file) WHERE s.p IS DISTINCT FROM p.p")" = 0 ] &&
    [ "$(q -c "SELECT count(*) FROM par")" = 240 ]
ok $? "parallel workers score the forest the same"

# bad input
s1=$(state "SELECT cxr.cxr_train('x', \$\$SELECT image, true FROM cxr_data.xrays LIMIT 5\$\$, 'random_forest')")
s2=$(state "SELECT cxr.cxr_train('x', $train_q, 'random_forest', params => '{\"n_estimators\": 0}')")
s3=$(state "SELECT cxr.cxr_train('x', $train_q, 'random_forest', params => '{\"max_leaf_nodes\": 5}')")
s4=$(state "SELECT cxr.cxr_train('x', $train_q, 'random_forest', params => '[1, 2]')")
s5=$(state "SELECT cxr.cxr_train('x', $train_q, 'alexnet', params => '{\"n_estimators\": 5}')")
s6=$(state "SELECT cxr.cxr_train('x', $train_q, init_model => 'rf')")
s7=$(state "SELECT cxr.cxr_train('x', $train_q, 'random_forest', trainable => 'fc')")
echo "# one class, n_estimators 0, unknown name, not an object, params on alexnet, init_model a forest, trainable: $s1 $s2 $s3 $s4 $s5 $s6 $s7"
[ "$s1 $s2 $s3 $s4 $s5 $s6 $s7" = "22023 22023 22023 22023 22023 22023 22023" ]
ok $? "bad arguments are 22023 errors"
s=$(state "SET cxr_attn.training_memory = '64MB'; SELECT cxr.cxr_train('x', $train_q, 'random_forest', params => '{\"feature_grid\": 512, \"n_estimators\": 1000}')")
[ "$s" = 54000 ]
ok $? "a feature grid too large for cxr_attn.training_memory is refused before any image is decoded ($s)"
# a hostile file: a child that points back at its parent
/usr/bin/python3 - "$tmp/a.safetensors" "$tmp/loop.safetensors" <<'PY'
import sys
sys.path.insert(0, "scripts")
from cxr_safetensors import load_safetensors, save_safetensors
t, meta = load_safetensors(sys.argv[1])
t = {k: v.numpy() for k, v in t.items()}
save_safetensors(sys.argv[2].replace("loop", "meta"), t, dict(meta, max_depth="500"))
t["children_left"][0] = 0
save_safetensors(sys.argv[2], t, meta)
PY
err=$({ printf "SELECT cxr.cxr_model_import('loop', decode('"; base64 -w0 "$tmp/loop.safetensors"; printf "', 'base64'));\n"; } |
      psql -X -q 2>&1 | head -1)
echo "# $err"
import_model meta500 "$tmp/meta.safetensors"
grep -q "node 0 has children" <<< "$err" && [ "$(q -c "SELECT count(*) FROM cxr.models WHERE name = 'loop'")" = 0 ] &&
    [ "$(q -c "SELECT count(*) FROM cxr_data.xrays WHERE cxr.covid_predict(image, 'meta500') = cxr.covid_predict(image, 'sk_a')")" = 240 ]
ok $? "a forest file whose tree loops back is refused on import; one whose recorded max_depth (500) is beyond the bound but whose trees are not still scores"
# cancel: statement_timeout stops a long fit within a second of it, and stores nothing
start=$(date +%s.%N)
s=$(state "SET statement_timeout = '1s'; SELECT cxr.cxr_train('long', $train_q, 'random_forest', params => '{\"n_estimators\": 10000}')")
took=$(/usr/bin/python3 -c "print(round($(date +%s.%N) - $start, 2))")
echo "# statement_timeout 1 s: $s after $took s"
[ "$s" = 57014 ] && /usr/bin/python3 -c "import sys; sys.exit(not $took < 2.5)" &&
    [ "$(q -c "SELECT count(*) FROM cxr.models WHERE name = 'long'")" = 0 ]
ok $? "statement_timeout cancels a long fit ($took s for a 1 s timeout) and stores nothing"
# the README's interchange path: scikit-learn's forest through the converter's command line
/usr/bin/python3 - "$tmp" <<'PY'
import pickle, sys
import numpy as np
from sklearn.ensemble import RandomForestClassifier
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1] + "/features.tsv")]
X = np.stack([np.array(r[3].split(" "), dtype=np.float32) for r in rows])
y = np.array([int(r[2]) for r in rows])
pickle.dump(RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), open(sys.argv[1] + "/rf.pickle", "wb"))
PY
/usr/bin/python3 scripts/sklearn_to_cxr.py "$tmp/rf.pickle" "$tmp/cli.safetensors" --grid 32 | sed 's/^/# /'
import_model cli "$tmp/cli.safetensors"
[ "$(q -c "SELECT count(*) FROM cxr_data.xrays WHERE cxr.covid_predict(image, 'cli') BETWEEN 0 AND 1")" = 240 ]
ok $? "scripts/sklearn_to_cxr.py converts a pickled forest that then scores every X-ray"

psql -X -q -d postgres -c "DROP DATABASE cxr_forest"
rm -rf "$tmp"
exit $tap_failed
