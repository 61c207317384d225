#!/bin/sh
# Copies the dashboards (IN_DIR/*.json, not its subfolders: dashboards/check/node_modules
# is full of other JSON) for Grafana's file provisioning. The repository's dashboards
# choose their Prometheus with their `datasource` variable (default: the default
# Prometheus datasource, provisioning/datasources/prometheus.yml) and are copied as
# they are. A dashboard exported "for sharing externally" may carry the import-time
# placeholder that provisioning leaves alone (grafana/grafana#10786): "${DS_PROMETHEUS}"
# (and a bare "$DS_PROMETHEUS") become "prometheus", the uid of that datasource.
#
#   render-dashboards.sh IN_DIR OUT_DIR     (docker-compose.yml: /in -> /out, busybox sh)
#
# POSIX sh and sed only: it runs in a busybox container and in tests/it/deploy.rs.
set -eu
in=${1:?usage: render-dashboards.sh IN_DIR OUT_DIR}
out=${2:?usage: render-dashboards.sh IN_DIR OUT_DIR}
uid=${DS_PROMETHEUS_UID:-prometheus}

mkdir -p "$out"
# Dashboards removed from IN_DIR disappear from Grafana too.
rm -f "$out"/*.json
n=0
for f in "$in"/*.json; do
  [ -e "$f" ] || continue
  name=$(basename "$f")
  sed -e "s/[\$]{DS_PROMETHEUS}/$uid/g" -e "s/\"[\$]DS_PROMETHEUS\"/\"$uid\"/g" "$f" >"$out/$name.tmp"
  mv "$out/$name.tmp" "$out/$name"
  n=$((n + 1))
done
echo "render-dashboards: $n dashboard(s) from $in to $out (datasource uid \"$uid\")"
