#!/usr/bin/env bash
# Installs the Debian packages cxr_attn builds, runs and tests with (needs root; a no-op when
# everything is present).
set -euo pipefail
packages="postgresql-15 postgresql-server-dev-15 libpng-dev zlib1g-dev libopenblas-dev
          libjpeg62-turbo-dev libopenjp2-7-dev
          build-essential python3 python3-numpy python3-torch python3-torchvision python3-sklearn perl
          python3-pydicom python3-gdcm dcmtk orthanc orthanc-postgresql curl"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # our scripts start their own cluster; keep the package from creating one
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/cxr_attn.conf
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
