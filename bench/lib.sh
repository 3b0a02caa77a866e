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
# goes to $WORK/results.tsv as NAME<TAB>fields. wrk runs as "${wrk_prefix[@]}" wrk
# -t$wrk_threads (default $threads); with cpu_pid set, the CPU time of that process and of wrk during the row go to
# $WORK/cpu.tsv (the pinned rows).
wrk_prefix=()
cpu_pid=""
perf_dir=""
# fold_profile NAME: the top entries of perf_dir/NAME.data by self time and by total time
# (children included), by symbol, into NAME-self.txt and NAME-total.txt.
fold_profile() {
    local data="$perf_dir/$1.data"
    [[ -s "$data" ]] || { say "NOTE  no profile for $1 (see $perf_dir/$1.log)"; return; }
    # --no-inline: resolving inlined frames from the debug info takes minutes per profile.
    perf report -i "$data" --no-children --no-inline --sort dso,symbol -g none --stdio --percent-limit 0.3 \
        2>/dev/null | sed -n 's/ *[-] *[-] *$//; /^[^#]/p' | head -60 >"$perf_dir/$1-self.txt"
    perf report -i "$data" --children --no-inline --sort symbol -g none --stdio --percent-limit 1 \
        2>/dev/null | sed -n 's/ *[-] *[-] *$//; /^[^#]/p' | head -80 >"$perf_dir/$1-total.txt"
    rm -f "$data"
    say "   profile: $perf_dir/$1-self.txt, $1-total.txt"
}
clock_ticks="$(getconf CLK_TCK)"
# cpu_ticks PID: user + system clock ticks of the process, all its threads.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
row() {
    local name="$1" url="$2" connections="$3"
    shift 3
    say "-- $name: $connections connections, ${seconds} s"
    local out="$WORK/wrk-$name.txt" status ticks_before=0 ticks_after=0 user system wall
    [[ -n "$cpu_pid" ]] && ticks_before="$(cpu_ticks "$cpu_pid")"
    local perf_pid=""
    if [[ -n "$perf_dir" ]]; then
        perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$cpu_pid" \
            -o "$perf_dir/$name.data" >"$perf_dir/$name.log" 2>&1 &
        perf_pid=$!
        sleep 0.3
    fi
    TIMEFORMAT='%3U %3S %3R'
    { time "${wrk_prefix[@]}" wrk -t"${wrk_threads:-$threads}" -c"$connections" -d"${seconds}s" --timeout 5s --latency \
        "$url" "$@" >"$out" 2>&1; } 2>"$WORK/time-$name.txt"
    status=$?
    if [[ -n "$perf_pid" ]]; then
        kill -INT "$perf_pid" 2>/dev/null
        wait "$perf_pid"
        fold_profile "$name"
    fi
    if [[ -n "$cpu_pid" ]]; then
        ticks_after="$(cpu_ticks "$cpu_pid")"
        # NAME, server CPU s, wrk user + system CPU s, wall s
        read -r user system wall <"$WORK/time-$name.txt"
        printf '%s\t%s\t%s\t%s\n' "$name" "$(awk -v t=$((ticks_after - ticks_before)) -v hz="$clock_ticks" 'BEGIN { print t / hz }')" \
            "$(awk -v u="$user" -v s="$system" 'BEGIN { print u + s }')" "$wall" >>"$WORK/cpu.tsv"
    fi
    local result
    result="$(grep '^RESULT ' "$out" | tail -1)"
    if ((status != 0)) || [[ -z "$result" ]]; then
        fail "wrk for $name (exit $status):"
        sed 's/^/        /' "$out"
        return
    fi
    printf '%s\t%s\n' "$name" "${result#RESULT }" >>"$WORK/results.tsv"
}
