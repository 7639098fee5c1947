#!/usr/bin/env bash
# Cancel and statement_timeout are answered within a second by every long call (training at
# small and large batch sizes, scoring a huge image), and an image's decoding and resizing stay
# bounded by cxr_attn.max_image_pixels (a 40 x 1,000,000 PNG of 6 KB once took 1.4 GB).
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/t/tap.inc
echo "1..13"
db=cxr_cancel
fresh_db $db
tmp=$(mktemp -d)
q -c "CREATE TABLE imgs (id int, image bytea, label boolean)"
test_xrays imgs
# PNGs written by Python's zlib (no libpng): a 40 x 1,000,000 gray image, and a 4,000 x 4,000
# 16-bit RGBA one (16 million pixels, 128 MB of samples), both under the default pixel limit
/usr/bin/python3 - "$tmp" <<'PY'
import struct, sys, zlib
def png(w, h, depth, color, row):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compressobj(9)
    body = b"".join(z.compress(b"\0" + row) for _ in range(h)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))
open(sys.argv[1] + "/tall.png", "wb").write(png(40, 1_000_000, 8, 0, bytes(range(40))))
open(sys.argv[1] + "/big.png", "wb").write(png(4000, 4000, 16, 6, bytes(4000 * 8)))
PY
for f in tall big; do
    { printf "INSERT INTO imgs VALUES (-1, decode('"; base64 -w0 "$tmp/$f.png"; printf "', 'base64'), true);\n"; } | q
    q -c "UPDATE imgs SET id = CASE '$f' WHEN 'tall' THEN 100 ELSE 101 END WHERE id = -1"
done
echo "# tall.png $(stat -c %s "$tmp/tall.png") bytes, big.png $(stat -c %s "$tmp/big.png") bytes"

# peak memory of one backend (VmHWM, read by the backend itself) around one call
peak_growth_mb() {
    q -c "SELECT cxr.covid_predict(image) FROM imgs WHERE id = 0" \
      -c "SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]" \
      -c "SELECT length($1::text) > 0 FROM imgs WHERE id = 100" \
      -c "SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]" |
        sed -n '2,4p' | paste -sd' ' | awk '$2 == "t" && NF == 3 {printf "%d", ($3 - $1) / 1024}'
}  # (empty when the call failed)
# 40 million pixels: the decoded floats are 160 MB; 12 bytes a pixel bounds the whole path
for call in "cxr.covid_predict(image)" "cxr.cxr_image_gray(image, 1024)" "cxr.attention_overlay(image, 3)"; do
    mb=$(peak_growth_mb "$call")
    [ -n "$mb" ] && [ "$mb" -ge 0 ] && [ "$mb" -lt 480 ]
    ok $? "$call of the 40 x 1,000,000 PNG peaks at +$mb MB (bound: 12 bytes x 40M pixels = 480 MB)"
done
# an overlay keeps the X-ray's own size up to 4,096 pixels a side: this one is drawn 1 x 4,096
# (its aspect kept), above the 25-row colour-scale band of a narrow image (src/core/cxr_draw.h)
dims=$(q -c "SELECT (i).width || 'x' || (i).height FROM (SELECT cxr.cxr_image_info(cxr.attention_overlay(image, 3)) AS i
             FROM imgs WHERE id = 100) s")
[ "$dims" = "1x4121" ]
ok $? "the overlay of the 40 x 1,000,000 PNG is scaled down to 4,096 rows, 1 x 4,096 + 25 ($dims)"

# runs SQL in the background, cancels it after $2 seconds (or lets statement_timeout do it),
# prints the milliseconds from the cancel to the call's return, and its error
cancel_after() {
    local sql=$1 wait=$2 mark="cxr_cancel_$RANDOM"
    (q -c "SET client_min_messages = warning" -c "$3" -c "/* $mark */ $sql" >/dev/null 2>"$tmp/err"; echo $? > "$tmp/rc") &
    local pid=""
    for _ in $(seq 1 100); do
        pid=$(q -d postgres -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%$mark%' AND state = 'active' AND pid <> pg_backend_pid()")
        [ -n "$pid" ] && break
        sleep 0.1
    done
    sleep "$wait"
    local start=$(date +%s%N)
    [ "$4" = cancel ] && q -d postgres -c "SELECT pg_cancel_backend($pid)" >/dev/null
    wait
    echo "$(( ($(date +%s%N) - start) / 1000000 )) $(head -1 "$tmp/err")"
}

for batch in 1 64 256; do
    # a batch of 256 needs 2.7 GB of activations: a superuser raises the limit for this test
    set -- $(cancel_after "SELECT count(*) FROM cxr.cxr_train('c$batch', 'SELECT image, label FROM imgs, generate_series(1, 64) WHERE id < 4', epochs => 100, batch_size => $batch)" \
                          4 "SET cxr_attn.training_memory = '4GB'" cancel)
    ms=$1; shift
    grep -q "canceling statement due to user request" <<< "$*" && [ "$ms" -lt 1000 ]
    ok $? "cxr_train at batch $batch returns ${ms} ms after pg_cancel_backend ($*)"
done
set -- $(cancel_after "SELECT count(*) FROM cxr.cxr_train('t', 'SELECT image, label FROM imgs, generate_series(1, 64) WHERE id < 4', epochs => 100, batch_size => 256)" \
                      0 "SET cxr_attn.training_memory = '4GB'; SET statement_timeout = '3s'" timeout)
ms=$1; shift
grep -q "statement timeout" <<< "$*" && [ "$ms" -lt 4000 ]
ok $? "statement_timeout = 3s stops cxr_train at batch 256 after ${ms} ms ($*)"
ok $([ "$(q -c "SELECT count(*) FROM cxr.models WHERE name IN ('c1', 'c64', 'c256', 't')")" = 0 ]; echo $?) \
   "cancelled and timed-out training stores nothing"

# scoring a 16-million-pixel 16-bit RGBA image: decoding and resizing answer cancel (scored 20
# times over, so that the statement outlasts the wait on a fast machine: one call takes ~0.4 s)
set -- $(cancel_after "SELECT count(cxr.covid_predict(image)) FROM imgs, generate_series(1, 20) WHERE id = 101" 0.5 "SELECT 1" cancel)
ms=$1; shift
grep -q "canceling statement due to user request" <<< "$*" && [ "$ms" -lt 1000 ]
ok $? "scoring a 4000 x 4000 16-bit RGBA PNG returns ${ms} ms after pg_cancel_backend ($*)"

# a JPEG 2000 DICOM of 3000 x 3000 noise: OpenJPEG takes over a second to decode it and cannot
# be interrupted, so it decodes on a thread of its own while the backend polls for the cancel
/usr/bin/python3 test/t/make_j2k_dicom.py "$tmp/j2k.dcm" 3000
{ printf "INSERT INTO imgs VALUES (102, decode('"; base64 -w0 "$tmp/j2k.dcm"; printf "', 'base64'), true);\n"; } | q
set -- $(cancel_after "SELECT count(cxr.covid_predict(image)) FROM imgs, generate_series(1, 20) WHERE id = 102" 0.5 "SELECT 1" cancel)
ms=$1; shift
grep -q "canceling statement due to user request" <<< "$*" && [ "$ms" -lt 1000 ]
ok $? "scoring a 3000 x 3000 JPEG 2000 DICOM returns ${ms} ms after pg_cancel_backend ($*)"

# batch scoring: 64 images go through each layer together, and every layer polls per image
# (8,000 rows, so that the statement outlasts the wait however fast scoring becomes);
# cancelled mid-query, or stopped by statement_timeout
set -- $(cancel_after "SELECT count(*) FROM cxr.covid_predict_batch('SELECT id, image FROM imgs, generate_series(1, 2000) WHERE id < 4', batch_size => 64)" \
                      2 "SELECT 1" cancel)
ms=$1; shift
grep -q "canceling statement due to user request" <<< "$*" && [ "$ms" -lt 1000 ]
ok $? "covid_predict_batch at batch 64 returns ${ms} ms after pg_cancel_backend ($*)"
set -- $(cancel_after "SELECT count(*) FROM cxr.covid_predict_batch('SELECT id, image FROM imgs, generate_series(1, 2000) WHERE id < 4', batch_size => 64)" \
                      0 "SET statement_timeout = '2s'" timeout)
ms=$1; shift
grep -q "statement timeout" <<< "$*" && [ "$ms" -lt 3000 ]
ok $? "statement_timeout = 2s stops covid_predict_batch after ${ms} ms ($*)"

psql -X -q -d postgres -c "DROP DATABASE $db"
rm -rf "$tmp"
exit $tap_failed
