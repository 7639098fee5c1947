#!/usr/bin/env bash
# A real imaging archive: Debian's Orthanc with its PostgreSQL plugins keeps its index and every
# DICOM file (as a large object) in this test's PostgreSQL. DICOM copies of a few shared X-rays
# (plus a lateral and a non-chest one) go in through Orthanc's REST API on loopback; one SQL query
# over Orthanc's own tables, run by a role with only the grants the README lists, scores
# every chest PA/AP X-ray Orthanc stores, each equal to scoring the same file's bytes directly
# (and to the PNG it was made from). Without the grants the role gets a permission error; a
# trigger keeps the grants current for files uploaded later.
#
# Orthanc's schema (orthanc-postgresql 4.0, Orthanc 1.10.1, Debian 12), as found by this test:
#   "resources"(internalid, resourcetype, publicid, parentid): resourcetype 0 patient, 1 study,
#       2 series, 3 instance; parentid is the parent's internalid; publicid is Orthanc's ID
#       (the one /instances/{id} uses).
#   "attachedfiles"(id, filetype, uuid, compressiontype, uncompressedhash, ...): id is the
#       resource's internalid; filetype 1 is the DICOM file; compressiontype 1 is none (the
#       default, "StorageCompression": false); uncompressedhash is the file's MD5.
#   "storagearea"(uuid, content oid, type): one large object per attachment, joined on uuid.
#   "maindicomtags"(id, taggroup, tagelement, value): the tags Orthanc indexes, per level, with
#       group and element as decimal integers: the series holds Modality (0008,0060) = (8, 96)
#       and BodyPartExamined (0018,0015) = (24, 21). ViewPosition (0018,5101) is in no level's
#       list in 1.10 (ExtraMainDicomTags came with Orthanc 1.11), so the query reads it from the
#       file with cxr.cxr_dicom_tags.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/t/tap.inc
need_shared_xrays
orthanc=/usr/sbin/Orthanc
plugins=/usr/share/orthanc/plugins       # dpkg -L orthanc-postgresql: links to /usr/lib/orthanc/*.so.4.0
for f in "$orthanc" "$plugins/libOrthancPostgreSQLIndex.so" "$plugins/libOrthancPostgreSQLStorage.so"; do
    [ -e "$f" ] || { echo "1..0 # SKIP no $f (Debian packages orthanc, orthanc-postgresql)"; exit 0; }
done
command -v curl >/dev/null || { echo "1..0 # SKIP no curl"; exit 0; }
echo "1..13"
db=cxr_orthanc
srv=cxr_orthanc_srv           # the role Orthanc connects as: owns its tables and large objects
scorer=cxr_orthanc_scorer     # the scoring role: only the grants the README lists
tmp=$(mktemp -d)
chmod 755 "$tmp"
orthanc_pid=
# PostgreSQL refuses to run as root; Orthanc does not, but it gets no more than it needs
as_user=()
if [ "$(id -u)" = 0 ]; then chown postgres "$tmp"; as_user=(runuser -u postgres --); fi
stop_orthanc() {  # graceful through the REST API, then TERM, then KILL; bounded
    [ -n "$orthanc_pid" ] || return 0
    curl -s --max-time 5 -X POST "$url/tools/shutdown" >/dev/null 2>&1
    for _ in $(seq 50); do kill -0 "$orthanc_pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$orthanc_pid" 2>/dev/null && { kill "$orthanc_pid"; sleep 2; kill -9 "$orthanc_pid" 2>/dev/null; }
    wait "$orthanc_pid" 2>/dev/null
    orthanc_pid=
}
cleanup() { stop_orthanc; rm -rf "$tmp"; }
trap cleanup EXIT

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "DROP ROLE IF EXISTS $scorer" \
    -c "DROP ROLE IF EXISTS $srv" -c "CREATE ROLE $srv LOGIN" -c "CREATE ROLE $scorer LOGIN"
PGOPTIONS="-c client_min_messages=warning" fresh_db $db
# Orthanc's plugin creates its tables in schema public (and pg_trgm, a trusted extension): the
# database's owner may do both
q -d postgres -c "ALTER DATABASE $db OWNER TO $srv"

# ---------------------------------------------------------------- DICOM files
# name, PNG, SOP class, Modality, BodyPartExamined, ViewPosition: the first four test-split
# X-rays of each class. chest_* are chest PA/AP X-rays the query must score; lateral and hand
# are DICOM X-rays it must pass over; late is uploaded after the trigger is in place.
dx=1.2.840.10008.5.1.4.1.1.1.1 sc=1.2.840.10008.5.1.4.1.1.7
mapfile -t covid < <(awk -F, '$2 == "covid" && $3 == "test" {print $1}' "$data/manifest.csv" | head -5)
mapfile -t normal < <(awk -F, '$2 == "normal" && $3 == "test" {print $1}' "$data/manifest.csv" | head -4)
printf '%s\t%s\t%s\t%s\t%s\t%s\n' \
    chest_1 "${covid[0]}" $dx DX CHEST PA   chest_2 "${covid[1]}" $dx DX CHEST AP \
    chest_3 "${covid[2]}" $sc CR CHEST PA   chest_4 "${normal[0]}" $dx DX CHEST PA \
    chest_5 "${normal[1]}" $dx DX CHEST PA  chest_6 "${normal[2]}" $dx DX CHEST PA \
    lateral "${covid[3]}" $dx DX CHEST LL   hand "${normal[3]}" $dx DX HAND PA \
    late "${covid[4]}" $dx DX CHEST PA > "$tmp/files.tsv"
/usr/bin/python3 - "$data" "$tmp" <<'PY'
import os, sys
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
data, out = sys.argv[1], sys.argv[2]
rows = open(os.path.join(out, "files.tsv")).read().splitlines()
ROOT = "1.2.826.0.1.3680043.10.4243."     # fixed: the same UIDs (and Orthanc IDs) every run
for i, line in enumerate(rows, 1):
    name, png, sop, modality, body, view = line.split("\t")
    px = np.asarray(Image.open(os.path.join(data, png)).convert("L"), dtype=np.uint8)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = ROOT + "3.%d" % i
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = ROOT + "0"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = ROOT + "1.%d" % i, ROOT + "2.%d" % i
    ds.PatientID, ds.PatientName = "CXR%03d" % i, "Test^" + name
    ds.StudyDate, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "20240101", str(i), 1, 1
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = modality, body, view
    if sop.endswith(".7"):
        ds.ConversionType = "WSD"          # Secondary Capture
    else:
        ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageComments = png
    ds.Rows, ds.Columns = px.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = px.tobytes()
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(os.path.join(out, name + ".dcm"), write_like_original=False)
PY
[ "$(ls "$tmp"/*.dcm | wc -l)" = 9 ]
ok $? "pydicom writes $(ls "$tmp"/*.dcm | wc -l) DICOM X-rays (DX and Secondary Capture, 8-bit MONOCHROME2)"
# one of them JPEG Lossless (process 14, selection value 1), as a modality might send it
if command -v dcmcjpeg >/dev/null && dcmcjpeg +e1 "$tmp/chest_6.dcm" "$tmp/chest_6j.dcm" \
        && dcmdump "$tmp/chest_6j.dcm" | grep -q 'TransferSyntax.*JPEG.*Lossless'; then
    mv "$tmp/chest_6j.dcm" "$tmp/chest_6.dcm"
    ok 0 "DCMTK's dcmcjpeg +e1 makes chest_6 JPEG Lossless"
else
    ok 1 "DCMTK's dcmcjpeg +e1 makes chest_6 JPEG Lossless"
fi

# ---------------------------------------------------------------- Orthanc
for _ in $(seq 20); do   # a free loopback port
    port=$((18042 + RANDOM % 2000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
done
url=http://127.0.0.1:$port
cat > "$tmp/orthanc.json" <<EOF
{
  "Name": "cxr_attn_test",
  "StorageDirectory": "$tmp/storage",
  "IndexDirectory": "$tmp/index",
  "HttpPort": $port,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "DicomServerEnabled": false,
  "StorageCompression": false,
  "WebDavEnabled": false,
  "Plugins": ["$plugins/libOrthancPostgreSQLIndex.so", "$plugins/libOrthancPostgreSQLStorage.so"],
  "PostgreSQL": {
    "EnableIndex": true,
    "EnableStorage": true,
    "Host": "$PGHOST",
    "Port": $PGPORT,
    "Database": "$db",
    "Username": "$srv",
    "Password": "",
    "Lock": false,
    "MaximumConnectionRetries": 3,
    "ConnectionRetryInterval": 1
  }
}
EOF
"${as_user[@]}" timeout 300 "$orthanc" "$tmp/orthanc.json" > "$tmp/orthanc.log" 2>&1 &
orthanc_pid=$!
system=
for _ in $(seq 120); do   # up to 60 s
    system=$(curl -s --max-time 2 "$url/system") && break
    kill -0 "$orthanc_pid" 2>/dev/null || break
    sleep 0.5
done
grep -q '"StorageAreaPlugin" : ".*libOrthancPostgreSQLStorage' <<< "$system" &&
    grep -q '"DatabaseBackendPlugin" : ".*libOrthancPostgreSQLIndex' <<< "$system"
ok $? "Orthanc $(sed -n 's/.*"Version" : "\(.*\)".*/\1/p' <<< "$system") answers on 127.0.0.1:$port with index and storage in PostgreSQL"
[ -n "$system" ] || sed 's/^/# /' "$tmp/orthanc.log" | tail -30

upload() {  # upload NAME: POST /instances, appends "NAME<TAB>Orthanc ID" to ids.tsv
    local r
    r=$(curl -s --max-time 30 -X POST -H 'Content-Type: application/dicom' \
             --data-binary "@$tmp/$1.dcm" "$url/instances") || return 1
    grep -q '"Status" : "Success"' <<< "$r" || { echo "# $1: $r"; return 1; }
    printf '%s\t%s\n' "$1" "$(sed -n 's/.*"ID" : "\(.*\)".*/\1/p' <<< "$r")" >> "$tmp/ids.tsv"
}
fails=0
for n in chest_1 chest_2 chest_3 chest_4 chest_5 chest_6 lateral hand; do upload $n || fails=$((fails + 1)); done
stored=$(curl -s --max-time 10 "$url/instances" | grep -c '"')
ok $([ $fails = 0 ] && [ "$stored" = 8 ]; echo $?) "8 DICOM files uploaded through the REST API ($fails failed, Orthanc lists $stored)"

# the files and what they are, by Orthanc ID, as the test's superuser sees them: the direct route
q -c "CREATE TABLE direct (name text, instance text, dicom bytea, png bytea)"
load_direct() {  # NAME ID
    local png
    png=$(awk -F'\t' -v n="$1" '$1 == n {print $2}' "$tmp/files.tsv")
    echo "INSERT INTO direct VALUES ('$1', '$2', decode('$(base64 -w0 "$tmp/$1.dcm")', 'base64'), decode('$(base64 -w0 "$data/$png")', 'base64'));"
}
while IFS=$'\t' read -r n id; do load_direct "$n" "$id"; done < "$tmp/ids.tsv" | q

# the join from an Orthanc instance to its DICOM file's bytes (this is where the schema shows)
same=$(q -c "SELECT count(*) FROM direct d
             JOIN resources i ON i.publicid = d.instance AND i.resourcetype = 3
             JOIN attachedfiles a ON a.id = i.internalid AND a.filetype = 1
             JOIN storagearea s ON s.uuid = a.uuid
             WHERE lo_get(s.content) = d.dicom AND a.uncompressedhash = md5(d.dicom)")
ok $([ "$same" = 8 ]; echo $?) "resources -> attachedfiles (filetype 1) -> storagearea gives each instance's uploaded bytes ($same of 8)"

# ---------------------------------------------------------------- the scoring role
# The README's two Orthanc blocks (```sql orthanc), as written, with this test's role names:
# the query, then the grants (tables, large objects, the trigger, the model registry).
readme_blocks() {
    /usr/bin/python3 - "$scorer" <<'PY'
import re, sys
text = open("README.md").read()
blocks = re.findall(r"```sql orthanc\n(.*?)```", text, re.S)
assert len(blocks) == 2, len(blocks)
query = blocks[0].strip().rstrip(";")
grants = re.sub(r"\bscorer\b", sys.argv[1], blocks[1])
# statements end with ';' at the end of a line, outside $$ quotes
stmts, cur, quoted = [], [], False
for line in grants.split("\n"):
    if not cur and (not line.strip() or line.lstrip().startswith("--")):
        continue
    cur.append(line)
    quoted ^= line.count("$$") % 2 == 1
    if not quoted and line.rstrip().endswith(";"):
        stmts.append("\n".join(cur))
        cur = []
assert len(stmts) == 5, len(stmts)
for sql in [query] + stmts:
    print(sql.replace("\n", "\x01"))
PY
}
mapfile -t readme_sql < <(readme_blocks)
ok $([ ${#readme_sql[@]} = 6 ]; echo $?) "the README's Orthanc query and its 5 grant statements are read (${#readme_sql[@]})"
for k in "${!readme_sql[@]}"; do readme_sql[$k]=$(tr '\001' '\n' <<< "${readme_sql[$k]}"); done
score_sql=${readme_sql[0]}
grant_tables=${readme_sql[1]}   # as Orthanc's role, the tables' owner: no superuser needed
grant_files=${readme_sql[2]}    # each DICOM file's large object
grant_trigger_fn=${readme_sql[3]}
grant_trigger=${readme_sql[4]}
grant_models=${readme_sql[5]}   # as a superuser
# error ROLE SQL: the message of its error, numbers as N ("" when it succeeds)
error() { psql -X -q -U "$1" -c "$2" 2>&1 >/dev/null | head -1 |
          sed -n 's/^ERROR: *//p' | sed 's/[0-9][0-9]*$/N/'; }
e1=$(error $scorer "$score_sql")
q -U $srv -c "$grant_tables"
e2=$(error $scorer "$score_sql")
q -U $srv -c "$grant_files"
e3=$(error $scorer "$score_sql")
q -c "$grant_models"
[ "$e1" = "permission denied for table resources" ] && [ "$e2" = "permission denied for large object N" ] &&
    [ "$e3" = "permission denied for the cxr_attn model registry" ]
ok $? "each grant is needed: without any, '$e1'; with the tables, '$e2'; with their large objects too, '$e3'"
psql -X -q -U $scorer -v ON_ERROR_STOP=1 -c "CREATE TEMP TABLE x AS $score_sql" \
     -c "COPY (SELECT instance, p_covid FROM x ORDER BY 1) TO STDOUT" > "$tmp/orthanc_scores.tsv" 2> "$tmp/err"
ok $? "the scoring role scores over Orthanc's tables with SELECT on 4 tables, the large objects, the model registry"
sed 's/^/# /' "$tmp/err" | head -5
q -c "CREATE TABLE via_orthanc (instance text, p float8)"
q -c "COPY via_orthanc FROM STDIN" < "$tmp/orthanc_scores.tsv"

# exactly the six chest PA/AP instances, each as scoring its file (and its PNG) directly
got=$(q -c "SELECT string_agg(d.name, ' ' ORDER BY d.name) FROM via_orthanc v JOIN direct d USING (instance)")
ok $([ "$got" = "chest_1 chest_2 chest_3 chest_4 chest_5 chest_6" ] && [ "$(q -c 'SELECT count(*) FROM via_orthanc')" = 6 ]; echo $?) \
   "the query picks the 6 chest PA/AP X-rays and passes over the lateral and the hand ($got)"
q -c "CREATE TABLE scored_direct AS SELECT name, instance, cxr.covid_predict(dicom) AS p_dicom,
                                           cxr.covid_predict(png) AS p_png FROM direct"
diff=$(q -c "SELECT count(*) FROM via_orthanc v JOIN scored_direct d USING (instance) WHERE v.p IS DISTINCT FROM d.p_dicom")
ok $([ "$diff" = 0 ] && [ "$(q -c 'SELECT count(p) FROM via_orthanc v JOIN scored_direct d USING (instance)')" = 6 ]; echo $?) \
   "each equals covid_predict of the same file's bytes ($diff differ)"
q -c "SELECT '# ' || name || ' ' || instance || ' dicom ' || p_dicom || ' png ' || p_png FROM scored_direct ORDER BY name"
diff=$(q -c "SELECT count(*) FROM scored_direct WHERE p_dicom IS DISTINCT FROM p_png")
ok $([ "$diff" = 0 ] && [ "$(q -c 'SELECT count(p_dicom) FROM scored_direct')" = 8 ]; echo $?) "each DICOM file (JPEG Lossless included) scores as the PNG it was made from ($diff differ)"

# ---------------------------------------------------------------- files uploaded later
# A trigger of Orthanc's owner on its storage table grants each new file as Orthanc stores it
# (it runs as the role inserting the row: Orthanc's, the large object's owner).
q -U $srv -c "$grant_trigger_fn" -c "$grant_trigger"
upload late
late_id=$(awk -F'\t' '$1 == "late" {print $2}' "$tmp/ids.tsv")
load_direct late "$late_id" | q
p=$(psql -X -Atq -U $scorer -c "SELECT p_covid FROM ($score_sql) x WHERE instance = '$late_id'" 2>&1)
want=$(q -c "SELECT cxr.covid_predict(dicom) FROM direct WHERE name = 'late'")
ok $([ -n "$want" ] && [ "$p" = "$want" ]; echo $?) "a file uploaded later scores without a new grant ($p)"

pid=$orthanc_pid
stop_orthanc
! kill -0 "$pid" 2>/dev/null && ! curl -s --max-time 2 "$url/system" >/dev/null
ok $? "Orthanc stops (shutdown through the REST API)"
psql -X -q -d postgres -c "DROP DATABASE $db" -c "DROP ROLE $scorer" -c "DROP ROLE $srv"
exit $tap_failed
