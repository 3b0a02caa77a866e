# Helpers shared by bench/run and bench/population (sourced, not run). They read the caller's
# globals: WORK (scratch directory), failed, threads and seconds (for `row`), BENCH_WRK_DIR.

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
fail() {
    say "FAIL  $*"
    failed=1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready URL PID NAME: polls URL until it answers 200, the process dies, or 60 s pass.
wait_ready() {
    local url="$1" pid="$2" name="$3" deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "FAIL  $name exited during start-up; its log:"
            sed 's/^/        /' "$WORK/$name.log"
            return 1
        fi
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" == 200 ]] && return 0
        sleep 0.05
    done
    say "FAIL  $name not ready at $url after 60 s; its log:"
    sed 's/^/        /' "$WORK/$name.log"
    return 1
}

# json_field FIELD: reads a JSON object on stdin, prints FIELD (empty if absent).
json_field() {
    python3 -c 'import json, sys
try: print(json.load(sys.stdin).get(sys.argv[1], ""))
except Exception: print("")' "$1"
}

# row NAME URL CONNECTIONS [wrk options] [-- script args]: one wrk run; its RESULT line
# goes to $WORK/results.tsv as NAME<TAB>fields.
row() {
    local name="$1" url="$2" connections="$3"
    shift 3
    say "-- $name: $connections connections, ${seconds} s"
    local out="$WORK/wrk-$name.txt"
    wrk -t"$threads" -c"$connections" -d"${seconds}s" --timeout 5s --latency "$url" "$@" >"$out" 2>&1
    local status=$?
    local result
    result="$(grep '^RESULT ' "$out" | tail -1)"
    if ((status != 0)) || [[ -z "$result" ]]; then
        fail "wrk for $name (exit $status):"
        sed 's/^/        /' "$out"
        return
    fi
    printf '%s\t%s\n' "$name" "${result#RESULT }" >>"$WORK/results.tsv"
}
