# Sourced: starts a throwaway PostgreSQL 15 as the postgres user (PostgreSQL refuses to run as
# root) in a temporary folder, exports PGHOST/PGPORT/PGUSER/PGDATABASE, and stops and removes
# it when the calling script exits, unless CXR_PG_KEEP=1: then it keeps running and the calling
# script's end says how to connect and how to stop it. CXR_PG_PORT sets the port (54329);
# CXR_PG_BIN another PostgreSQL's binaries (a `make install DESTDIR=...` copy, with its own build
# of the extension beside it).
pg_bin=${CXR_PG_BIN:-/usr/lib/postgresql/15/bin}
pg_dir=$(mktemp -d /tmp/cxr_attn_pg.XXXXXX)
chmod 755 "$pg_dir"
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
export PGHOST=$pg_dir PGPORT=${CXR_PG_PORT:-54329} PGUSER=postgres PGDATABASE=postgres
run_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust >/dev/null
# OPENBLAS_CORETYPE is dropped so the server shows what a stock machine gets, unless
# CXR_PG_OPENBLAS_CORETYPE names one for it (bench/xray_server.inc)
run_pg env -u OPENBLAS_CORETYPE ${CXR_PG_OPENBLAS_CORETYPE:+OPENBLAS_CORETYPE=$CXR_PG_OPENBLAS_CORETYPE} "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $PGPORT -k $pg_dir -c listen_addresses='' -c max_parallel_workers_per_gather=2" start >/dev/null
pg_throwaway_stop() {
    run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
}
pg_throwaway_kept() {
    echo "== the server keeps running (CXR_PG_KEEP=1):"
    echo "   export PGHOST=$pg_dir PGPORT=$PGPORT PGUSER=postgres PGDATABASE=$PGDATABASE"
    echo "   psql                                   # the tour of README.md, by hand"
    echo "   runuser -u postgres -- $pg_bin/pg_ctl -D $pg_dir/data stop && rm -rf $pg_dir"
}
if [ "${CXR_PG_KEEP:-0}" = 1 ]; then
    trap pg_throwaway_kept EXIT
else
    trap pg_throwaway_stop EXIT
fi
