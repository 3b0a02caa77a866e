# Sourced by bench/run after the unpinned rows (its functions and variables in scope): the pinned
# rows, then, with --profile, the same rows again under perf. See BENCHMARKS.md, "Pinned rows".
# shellcheck shell=bash
# ------------------------------------------------------------------------------------ pinned rows
# The same rows with the server under test alone on core 0 (restarted under taskset, so that it
# sizes its runtime and its password pool for one core) and wrk on core 1 with one thread; set
# against the one-thread limits. The CPU each side spent tells which core bound the row. Then
# both servers restart unpinned for the rest of the run.
if ((${BENCH_PINNED:-1} == 0)); then
    echo "off (BENCH_PINNED=0)" >"$WORK/pinned.txt"
elif (($(nproc) < 2)) || ! command -v taskset >/dev/null; then
    echo "skipped: needs taskset and two cores (nproc: $(nproc))" >"$WORK/pinned.txt"
else
    step "pinned rows: the server under test on core 0, wrk on core 1 (one thread)"
    stop_server "$rs_pid"
    stop_server "$auth_pid"
    if start_auth taskset -c 0 && start_rs taskset -c 0; then
        : >"$WORK/families-pinned.txt"
        for _ in $(seq $((refresh_connections + 4))); do
            password_grant | json_field refresh_token >>"$WORK/families-pinned.txt"
        done
        wrk_prefix=(taskset -c 1)
        wrk_threads=1
        cpu_pid="$auth_pid"
        BENCH_FORM="grant_type=client_credentials" \
            row pinned_client_credentials "$AUTH/token" 16 -H "$basic" -s "$BENCH_WRK_DIR/form.lua"
        BENCH_FORM="$password_form" \
            row pinned_password "$AUTH/token" 8 -H "$basic" -s "$BENCH_WRK_DIR/form.lua"
        row pinned_refresh "$AUTH/token" "$refresh_connections" -H "$basic" -s "$BENCH_WRK_DIR/refresh_chain.lua" \
            -- "$WORK/families-pinned.txt" 1
        row pinned_livez_auth "$AUTH/livez" 32 -s "$BENCH_WRK_DIR/get.lua"
        if [[ "$AUTH_CLIENT_CACHE" == true ]]; then
            stop_server "$auth_pid"
            if AUTH_CLIENT_CACHE=false start_auth taskset -c 0; then
                cpu_pid="$auth_pid"
                BENCH_FORM="grant_type=client_credentials" row pinned_client_credentials_uncached \
                    "$AUTH/token" 16 -H "$basic" -s "$BENCH_WRK_DIR/form.lua"
            else
                fail "restarting the auth-server without its client cache"
            fi
        fi
        cpu_pid="$rs_pid"
        row pinned_users_me_reused "$RS/users/me" 32 -H "Authorization: Bearer $access_token" -s "$BENCH_WRK_DIR/get.lua"
        hits_before="$(cache_hits "$RS")"
        row pinned_users_me_fresh "$RS/users/me" 32 -s "$BENCH_WRK_DIR/fresh_tokens.lua" -- "$WORK/tokens.txt" 1
        printf '%s\t%s\n' pinned_users_me_fresh "$(($(cache_hits "$RS") - ${hits_before:-0}))" >>"$WORK/cache-hits.tsv"
        row pinned_livez_rs "$RS/livez" 32 -s "$BENCH_WRK_DIR/get.lua"
        # /livez with the user token's Authorization header, which it ignores: what a request
        # of /users/me's size costs the server without any token work (reading ~900 more bytes).
        row pinned_livez_rs_bearer "$RS/livez" 32 -H "Authorization: Bearer $access_token" -s "$BENCH_WRK_DIR/get.lua"
        if ((profile_rows)); then
            step "profiles: the pinned rows again, perf on the server (rates lowered by perf; not in the table)"
            perf_dir="$WORK/profiles"
            mkdir -p "$perf_dir"
            row profile_users_me_reused "$RS/users/me" 32 -H "Authorization: Bearer $access_token" -s "$BENCH_WRK_DIR/get.lua"
            row profile_users_me_fresh "$RS/users/me" 32 -s "$BENCH_WRK_DIR/fresh_tokens.lua" -- "$WORK/tokens.txt" 1
            row profile_livez_rs "$RS/livez" 32 -s "$BENCH_WRK_DIR/get.lua"
            stop_server "$auth_pid"
            if start_auth taskset -c 0; then
                cpu_pid="$auth_pid"
                BENCH_FORM="grant_type=client_credentials" \
                    row profile_client_credentials "$AUTH/token" 16 -H "$basic" -s "$BENCH_WRK_DIR/form.lua"
                : >"$WORK/families-profile.txt"
                for _ in $(seq $((refresh_connections + 4))); do
                    password_grant | json_field refresh_token >>"$WORK/families-profile.txt"
                done
                row profile_refresh "$AUTH/token" "$refresh_connections" -H "$basic" -s "$BENCH_WRK_DIR/refresh_chain.lua" \
                    -- "$WORK/families-profile.txt" 1
            else
                fail "restarting the auth-server for the profiles"
            fi
            perf_dir=""
        fi
        wrk_prefix=()
        wrk_threads="$threads"
        cpu_pid=""
    else
        fail "starting the servers pinned"
    fi
    stop_server "$rs_pid"
    stop_server "$auth_pid"
    step "the servers restarted unpinned"
    start_auth && start_rs || { fail "restarting the servers"; exit 1; }
fi

