#!/usr/bin/env bash
# OHIF load times on Klinika vs Orthanc (Debian's package + its DICOMweb plugin), same OHIF build,
# same demo CT, same Chromium. Everything runs in a network namespace with only loopback
# (Orthanc 1.10 binds 0.0.0.0). For Orthanc, nginx serves OHIF and proxies /dicom-web.
# usage: bench/run-viewer.sh WORK_DIR [CT_SLICES] [RUNS]       (needs root for the namespace)
set -euo pipefail
WORK=$(realpath -m "$1"); SLICES=${2:-300}; RUNS=${3:-5}
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(dirname "$HERE")
PY=$ROOT/.venv/bin/python; KLINIKA=$ROOT/.venv/bin/klinika
OHIF=$(KLINIKA_CACHE_DIR=$ROOT/klinika-data/cache $KLINIKA viewer install | sed -E 's/.* in (.*)$/\1/')
BENCH="$ROOT/bench/harness"
rm -rf "$WORK"; mkdir -p "$WORK"/{orthanc-db,nginx,results,logs,demo}

echo "== demo data ($SLICES CT slices)"
$PY -c "from klinika.demo import generate_demo; generate_demo('$WORK/demo', ct_slices=$SLICES)"
export KLINIKA_DATA_DIR=$WORK/klinika-data KLINIKA_CACHE_DIR=$ROOT/klinika-data/cache
$KLINIKA import "$WORK/demo" > /dev/null
$KLINIKA user add bench --role doctor --password bench-password-123 > /dev/null

unshare --net sleep infinity & HOLDER=$!
trap 'kill $HOLDER $ORTHANC $KPID $NGINX 2>/dev/null || true' EXIT
ORTHANC=; KPID=; NGINX=
sleep 0.5
NS="nsenter --net=/proc/$HOLDER/ns/net"
$NS ip link set lo up

echo "== Orthanc + nginx (OHIF) on :18080, Klinika on :18043"
sed "s#BENCH_DIR#$WORK#g" "$BENCH/orthanc/orthanc-default.json" > "$WORK/orthanc.json"
$NS /usr/sbin/Orthanc --logdir="$WORK/logs" "$WORK/orthanc.json" > "$WORK/logs/orthanc.out" 2>&1 & ORTHANC=$!
KLINIKA_HTTP_PORT=18043 KLINIKA_DIMSE_PORT=14245 $NS $KLINIKA serve > "$WORK/logs/klinika.out" 2>&1 & KPID=$!
for _ in $(seq 1 60); do $NS curl -sf http://127.0.0.1:18042/system >/dev/null && break; sleep 0.5; done
$NS storescu -aet BENCH +sd +r -q 127.0.0.1 14242 "$WORK/demo"
$PY - "$WORK/nginx/app-config.js" <<'PYEOF'
import sys
from klinika.viewer.shell import ViewerUser, app_config
user = ViewerUser("bench", "bench", "doctor", "Doctor", "en", False, False)
text = app_config(user, {}).replace('"thumbnailRendering": "thumbnail"', '"thumbnailRendering": "rendered"')
open(sys.argv[1], "w").write(text)
PYEOF
cat > "$WORK/nginx/nginx.conf" <<NGINX
daemon off; worker_processes 2; pid $WORK/nginx/nginx.pid; error_log $WORK/logs/nginx.log;
events { worker_connections 512; }
http {
  include /etc/nginx/mime.types; default_type application/octet-stream; access_log off;
  sendfile on; tcp_nodelay on; gzip on; gzip_types application/javascript text/css application/json application/dicom+json;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;
  server {
    listen 127.0.0.1:18080;
    location = /app-config.js { alias $WORK/nginx/app-config.js; }
    location /dicom-web/ { proxy_pass http://127.0.0.1:18042; proxy_buffering off; }
    location / { root $OHIF; try_files \$uri /index.html; }
  }
}
NGINX
$NS nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & NGINX=$!
for _ in $(seq 1 60); do $NS curl -sf http://127.0.0.1:18043/health >/dev/null && break; sleep 0.5; done
CT=$($NS curl -s "http://127.0.0.1:18042/dicom-web/studies?ModalitiesInStudy=CT" | $PY -c "import sys,json;print(json.load(sys.stdin)[0]['0020000D']['Value'][0])")
echo "== CT study $CT"
$NS $PY "$HERE/viewer_load.py" --url http://127.0.0.1:18043 --study "$CT" --login bench:bench-password-123 \
  --runs "$RUNS" --label klinika --out "$WORK/results/klinika.json"
$NS $PY "$HERE/viewer_load.py" --url http://127.0.0.1:18080 --study "$CT" \
  --runs "$RUNS" --label "orthanc-1.10 + nginx" --out "$WORK/results/orthanc.json"
echo "results in $WORK/results"
