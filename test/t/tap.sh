# Sourced by the TAP tests: a tiny TAP emitter and psql helpers.
tap_n=0
tap_failed=0
ok() {  # ok CONDITION-EXIT-STATUS DESCRIPTION
    tap_n=$((tap_n + 1))
    if [ "$1" = 0 ]; then echo "ok $tap_n - $2"; else echo "not ok $tap_n - $2"; tap_failed=1; fi
}
q() { psql -X -v ON_ERROR_STOP=1 -Atq "$@"; }
# import_model NAME FILE: registers a model file (through stdin: it is too big for argv)
import_model() {
    { printf "SELECT cxr.cxr_model_import('%s', decode('" "$1"; base64 -w0 "$2"; printf "', 'base64'));\n"; } | q >/dev/null
}
