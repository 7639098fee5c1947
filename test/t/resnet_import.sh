#!/usr/bin/env bash
# ResNet50 from PyTorch, the README's path: torchvision models (random weights: an ImageNet-shaped
# one whose 1000-class head the converter replaces, and a user's own 1-logit model saved whole)
# go through scripts/torchvision_to_cxr.py and cxr_model_import, and score in SQL as torchvision
# scores them; attention_map on ResNet50 is a clear error; transfer learning with
# trainable => 'fc' leaves every other tensor of the file bit for bit as it was.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/t/tap.inc
echo "1..7"
db=cxr_tap_resnet
fresh_db $db
q -c "CREATE TABLE imgs (id int, image cxr.cxr_image, label boolean)"
test_xrays imgs
tmp=$(mktemp -d)
chmod 755 "$tmp"

/usr/bin/python3 - "$tmp" <<'PY'
import sys, torch, torchvision
sys.path.insert(0, "test/ref")
# the fixture writer's BN randomisation: residual branches scaled down, so that the logits stay
# modest and the comparison measures the engine, not float32 rounding of huge activations
from resnet_reference import randomise
d = sys.argv[1]
torch.manual_seed(5)
gen = torch.Generator().manual_seed(5)
imagenet = torchvision.models.resnet50(weights=None)
randomise(imagenet, gen)
torch.save(imagenet.state_dict(), f"{d}/imagenet.pth")
own = torchvision.models.resnet50(weights=None, num_classes=1)
randomise(own, gen)
torch.save(own, f"{d}/own.pth")
PY
/usr/bin/python3 scripts/torchvision_to_cxr.py "$tmp/imagenet.pth" "$tmp/imagenet.safetensors" | sed 's/^/# /'
/usr/bin/python3 scripts/torchvision_to_cxr.py "$tmp/own.pth" "$tmp/own.safetensors" | sed 's/^/# /'
# as README.md does it: the file's bytes through COPY (too big for a command line)
for m in imagenet own; do
    base64 -w0 "$tmp/$m.safetensors" |
        q -c "CREATE TEMP TABLE f (b text)" -c "COPY f FROM STDIN" \
          -c "SELECT cxr.cxr_model_import('rn_$m', decode(b, 'base64')) FROM f" >/dev/null
done
ok $([ "$(q -c "SELECT string_agg(arch, ',' ORDER BY name) FROM cxr.current_models WHERE name LIKE 'rn_%'")" = "resnet50,resnet50" ]; echo $?) \
   "both converted checkpoints import as resnet50"

q -c "SELECT id, cxr.covid_predict(image, 'rn_imagenet'), cxr.covid_predict(image, 'rn_own'),
             array_to_string(cxr.cxr_image_gray(image, 224), ',') FROM imgs ORDER BY id" > "$tmp/scored.txt"
/usr/bin/python3 - "$tmp" <<'PY'
import sys, numpy as np, torch, torchvision
sys.path.insert(0, "scripts")
from cxr_safetensors import load_safetensors
d = sys.argv[1]
nets = []
for m in ("imagenet", "own"):
    t, meta = load_safetensors(f"{d}/{m}.safetensors")
    net = torchvision.models.resnet50(weights=None, num_classes=1)
    net.load_state_dict(t, strict=False)
    nets.append(net.double().eval())  # the oracle in float64
mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
worst = 0.0
for line in open(f"{d}/scored.txt"):
    i, p1, p2, gray = line.strip().split("|")
    v = torch.tensor(np.array(gray.split(","), dtype=np.float32)).double().reshape(1, 1, 224, 224)
    x = (v.repeat(1, 3, 1, 1) - mean) / std
    for net, p in zip(nets, (p1, p2)):
        with torch.no_grad():
            ref = torch.sigmoid(net(x)[0, 0]).item()
        worst = max(worst, abs(ref - float(p)) / max(abs(ref), 1e-12))
        print(f"# image {i}: SQL {float(p):.9g}, torchvision {ref:.9g}")
print(f"# worst relative difference SQL vs torchvision: {worst:.2e}")
open(f"{d}/worst", "w").write(str(worst))
PY
worst=$(cat "$tmp/worst" 2>/dev/null || echo 1)
ok $(/usr/bin/python3 -c "import sys; sys.exit(0 if float('$worst') <= 1e-4 else 1)"; echo $?) \
   "imported torchvision models score in SQL as in torchvision (worst rel. diff $worst)"

err=$(q -c "SELECT cxr.attention_map(image, 4, 'rn_own') FROM imgs WHERE id = 0" 2>&1)
err2=$(q -c "SELECT cxr.attention_figure(ARRAY[image], NULL, 'rn_own') FROM imgs WHERE id = 0" 2>&1)
echo "# $err"
echo "# $err2"
grep -q "resnet50 has no attention layers" <<< "$err" && grep -q "resnet50 has no attention layers" <<< "$err2"
ok $? "attention_map and attention_figure on ResNet50 are a clear error"

# transfer learning: only fc trains; every other tensor keeps its bytes
out=$(q -c "SET client_min_messages = notice" \
        -c "SELECT count(*) FROM cxr.cxr_train('rn_tuned', 'SELECT image, label FROM imgs', init_model => 'rn_imagenet', epochs => 1, batch_size => 4, learning_rate => 1e-2, trainable => 'fc')" 2>&1)
echo "$out" | grep -i "training the" | sed 's/^/# /'
q -c "SELECT encode(cxr.cxr_model_export('rn_tuned'), 'base64')" | base64 -d > "$tmp/tuned.safetensors"
/usr/bin/python3 - "$tmp" <<'PY'
import sys
sys.path.insert(0, "scripts")
from cxr_safetensors import load_safetensors
d = sys.argv[1]
a, _ = load_safetensors(f"{d}/imagenet.safetensors")
b, meta = load_safetensors(f"{d}/tuned.safetensors")
changed = sorted(k for k in a if not a[k].equal(b[k]))
print(f"# changed by the run: {changed}; metadata {meta}")
ok = changed == ["fc.bias", "fc.weight"] and set(a) == set(b)
open(f"{d}/frozen_ok", "w").write("1" if ok else "0")
PY
ok $([ "$(cat "$tmp/frozen_ok" 2>/dev/null)" = 1 ]; echo $?) "trainable => 'fc' changes fc and nothing else, running statistics included"

err=$(q -c "SELECT count(*) FROM cxr.cxr_train('rn_bad', 'SELECT image, label FROM imgs', init_model => 'rn_imagenet', trainable => 'layer9')" 2>&1)
echo "# $err"
grep -q 'no parameter of resnet50 is named "layer9"' <<< "$err"
ok $? "a trainable prefix that names nothing is refused"
ok $([ "$(q -c "SELECT count(*) FROM cxr.models WHERE name = 'rn_bad'")" = 0 ]; echo $?) "and nothing is stored"

# a run from scratch resumes (its state once said "scaled_dot", its file "dot": refused before 0.5.0)
# (resnet50 needs more than the default 2 GB of cxr_attn.training_memory: 2076 MB at batch 4)
q -c "SET client_min_messages = warning" -c "SET cxr_attn.training_memory = '3GB'" \
  -c "SELECT count(*) FROM cxr.cxr_train('rn_scratch', 'SELECT image, label FROM imgs', 'resnet50', epochs => 1, batch_size => 4)" \
  -c "SELECT count(*) FROM cxr.cxr_train('rn_scratch2', 'SELECT image, label FROM imgs', init_model => 'rn_scratch', resume => true, epochs => 1, batch_size => 4)" >/dev/null
hist=$(q -c "SELECT string_agg(epoch::text, ',' ORDER BY epoch) FROM cxr.training_history h JOIN cxr.current_models c USING (model_id) WHERE c.name = 'rn_scratch2'")
ok $([ "$hist" = "1,2" ]; echo $?) "a resnet50 run from scratch resumes (history $hist)"

psql -X -q -d postgres -c "DROP DATABASE $db"
rm -rf "$tmp"
exit $tap_failed
