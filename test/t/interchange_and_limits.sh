#!/usr/bin/env bash
# A model trained by cxr_train, exported and loaded into the PyTorch reference gives the same
# probabilities on the same inputs; cancelling a training from another session stops it within
# seconds and stores nothing; scoring many rows keeps the backend's memory flat.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/t/tap.inc
echo "1..5"
db=cxr_tap
fresh_db $db
q -c "CREATE TABLE imgs (id int, image cxr.cxr_image, label boolean)"
test_xrays imgs
q -c "SET client_min_messages = warning" \
  -c "SELECT count(*) FROM cxr.cxr_train('tiny', 'SELECT image, label FROM imgs', 'alexnet_attn2', epochs => 2, batch_size => 4)" >/dev/null
tmp=$(mktemp -d)
q -c "SELECT encode(cxr.cxr_model_export('tiny'), 'base64')" | base64 -d > "$tmp/tiny.safetensors"
q -c "SELECT id, cxr.covid_predict(image, 'tiny'), array_to_string(cxr.cxr_image_gray(image, 299), ',') FROM imgs ORDER BY id" > "$tmp/scored.txt"
/usr/bin/python3 - "$tmp" <<'PY'
import sys, numpy as np, torch
sys.path.insert(0, "test/ref")
from cxrnet import model_from_file
d = sys.argv[1]
net = model_from_file(f"{d}/tiny.safetensors").eval()
worst = 0.0
for line in open(f"{d}/scored.txt"):
    i, p, gray = line.strip().split("|")
    x = (torch.tensor(np.array(gray.split(","), dtype=np.float32)).reshape(1, 1, 299, 299) - 0.5) / 0.5
    with torch.no_grad():
        ref = torch.sigmoid(net(x.repeat(1, 3, 1, 1))[0]).item()
    worst = max(worst, abs(ref - float(p)) / max(abs(ref), 1e-12))
print(f"# worst relative difference SQL vs PyTorch: {worst:.2e}")
open(f"{d}/worst", "w").write(str(worst))
PY
worst=$(cat "$tmp/worst" 2>/dev/null || echo 1)
ok $(/usr/bin/python3 -c "import sys; sys.exit(0 if float('$worst') <= 1e-4 else 1)"; echo $?) \
   "cxr_train's model in PyTorch gives the same probabilities (worst rel. diff $worst)"
rm -rf "$tmp"

# cancel from another session
(q -c "SELECT count(*) FROM cxr.cxr_train('to_cancel', 'SELECT image, label FROM imgs, generate_series(1, 16)', epochs => 100, batch_size => 8)" \
    > /dev/null 2>"/tmp/cxr_cancel.$$"; echo $? > "/tmp/cxr_cancel_rc.$$") &
for _ in $(seq 1 50); do
    pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%to_cancel%' AND pid <> pg_backend_pid() AND state = 'active'")
    [ -n "$pid" ] && break
    sleep 0.2
done
sleep 3
start=$(date +%s%N)
q -c "SELECT pg_cancel_backend($pid)" >/dev/null
wait
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
grep -q "canceling statement due to user request" "/tmp/cxr_cancel.$$" && [ "$took_ms" -lt 10000 ]
ok $? "pg_cancel_backend stops cxr_train (returned after ${took_ms} ms)"
ok $([ "$(q -c "SELECT count(*) FROM cxr.models WHERE name = 'to_cancel'")" = 0 ]; echo $?) "a cancelled training stores nothing"
rm -f "/tmp/cxr_cancel.$$" "/tmp/cxr_cancel_rc.$$"

# memory stays flat over many rows (per-row memory is freed; the model is loaded once)
mem=$(q -c "SELECT count(*) FROM (SELECT cxr.covid_predict(image, 'tiny') FROM imgs) s" \
        -c "SELECT sum(total_bytes) FROM pg_backend_memory_contexts" \
        -c "SELECT count(*) FROM (SELECT cxr.covid_predict(i.image, 'tiny') FROM imgs i, generate_series(1, 100)) s" \
        -c "SELECT sum(total_bytes) FROM pg_backend_memory_contexts" | sed -n '2p;4p' | paste -sd' ')
set -- $mem
growth=$(( $2 - $1 ))
ok $([ "$growth" -lt 1048576 ]; echo $?) "scoring 400 rows grows backend memory contexts by $growth bytes (< 1 MiB)"

# pg_dump keeps users' models (the extension marks its tables as configuration data)
want=$(q -c "SELECT string_agg(id || ':' || name || ':' || md5(weights), ',' ORDER BY id) FROM cxr.models WHERE name <> 'default'")
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${db}_restored" -c "CREATE DATABASE ${db}_restored"
pg_dump -d "$db" | psql -X -q -d "${db}_restored" >/dev/null 2>&1
got=$(psql -X -Atq -d "${db}_restored" -c "SELECT string_agg(id || ':' || name || ':' || md5(weights), ',' ORDER BY id) FROM cxr.models WHERE name <> 'default'")
ok $([ -n "$want" ] && [ "$want" = "$got" ]; echo $?) "pg_dump and restore keep trained models, ids and bytes"
psql -X -q -d postgres -c "DROP DATABASE ${db}_restored"
psql -X -q -d postgres -c "DROP DATABASE $db"
exit $tap_failed
