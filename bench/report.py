#!/usr/bin/env python3
"""The report of bench/run: reads what the run left in its scratch directory and prints the
tables (limits, unpinned rows, pinned rows with each core's load, the tower pair, overload,
memory, revocation feed). Exits 1 on errors only (socket errors, non-2xx answers, missing
rows); ratios and targets are printed, never gated on.

    bench/report.py WORK_DIR --store NAME --seconds N --tokens N --password-rate R
                    --revocation-poll S --reach-count N --seed-small N

Files read from WORK_DIR: limits.tsv, results.tsv, memory.tsv, cache-hits.tsv, reach.tsv,
feed-memory.tsv, cpu.tsv (pinned rows: the server's and wrk's CPU seconds), pinned.txt (why
the pinned rows were skipped, if they were).
"""
import argparse
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("work")
parser.add_argument("--store", required=True)
parser.add_argument("--seconds", required=True)
parser.add_argument("--tokens", required=True)
parser.add_argument("--password-rate", required=True)
parser.add_argument("--revocation-poll", required=True)
parser.add_argument("--reach-count", required=True)
parser.add_argument("--seed-small", required=True)
args = parser.parse_args()
work = args.work
limits_path, results_path, memory_path, hits_path, reach_path, feed_memory_path, cpu_path = (
    os.path.join(work, name)
    for name in ("limits.tsv", "results.tsv", "memory.tsv", "cache-hits.tsv", "reach.tsv",
                 "feed-memory.tsv", "cpu.tsv"))
store, seconds, n_tokens, password_rate = args.store, args.seconds, args.tokens, args.password_rate
revocation_poll, reach_count, seed_small = args.revocation_poll, args.reach_count, args.seed_small
limits = {}
for line in open(limits_path):
    _, name, threads, rate = line.split("\t")
    limits[(name, int(threads))] = float(rate)
rows = {}
for line in open(results_path):
    name, fields = line.rstrip("\n").split("\t", 1)
    rows[name] = {k: float(v) for k, v in (f.split("=") for f in fields.split())}
memory = {}
try:
    for line in open(memory_path):
        name, fields = line.rstrip("\n").split("\t", 1)
        memory[name] = dict(f.split("=") for f in fields.split())
except OSError:
    pass

problems = []
def check_errors(name, row, allow_503=False):
    sockets = row["connect"] + row["read"] + row["write"] + row["timeout"]
    if sockets:
        problems.append(f"{name}: {int(sockets)} socket errors or timeouts")
    non2xx = row["non2xx"]
    if allow_503:
        if row["s503"] < 0:
            problems.append(f"{name}: 503 answers were not counted")
        non2xx -= max(row["s503"], 0)
        if row["s503_no_retry_after"] > 0:
            problems.append(f"{name}: {int(row['s503_no_retry_after'])} 503 answers without Retry-After")
    if non2xx:
        problems.append(f"{name}: {int(non2xx)} answers other than 2xx")
    if row.get("starved", 0) > 0:
        problems.append(f"{name}: {int(row['starved'])} requests found no refresh token (a chain broke)")
    if row["requests"] <= 0:
        problems.append(f"{name}: no request completed")

# name, label, limit key (or a row name), target ratio
table = [
    ("client_credentials", "POST /token client_credentials", ("sign", 2), 0.65),
    ("password", "POST /token password", ("argon2", 2), 0.85),
    ("refresh", "POST /token refresh_token", ("sign", 2), 0.50),
    ("users_me_reused", "GET /users/me, one token", "livez_rs", 0.80),
    ("users_me_fresh", f"GET /users/me, {n_tokens} tokens", ("verify", 2), 0.45),
    ("users_me_reused_tower", "  one token, tower layer", "users_me_reused_poem_mean", 0.95),
    ("users_me_fresh_tower", f"  {n_tokens} tokens, tower layer", "users_me_fresh_poem_mean", 0.95),
    ("jwks", "GET /.well-known/jwks.json", None, None),
    ("livez_auth", "GET /livez (auth-server)", None, None),
    ("livez_rs", "GET /livez (resource-server)", None, None),
]
# The tower rows against their poem rows: each side's runs (poem, tower, tower, poem; --short
# one each) averaged, the ratio of the averages set against 0.95, p50 and p99 the worse run's.
pairs = {}
for kind in ("reused", "fresh"):
    sides = {}
    for side, name in (("poem", f"users_me_{kind}"), ("tower", f"users_me_{kind}_tower")):
        runs = [(n, rows[n]) for n in (name, f"{name}_2") if n in rows]
        for n, run in runs[1:]:
            check_errors(n, run)
        if runs:
            sides[side] = runs
    pairs[kind] = sides
    if len(sides) == 2:
        def mean(side):
            runs = [run for _, run in sides[side]]
            merged = dict(runs[0])
            merged["rps"] = sum(r["rps"] for r in runs) / len(runs)
            merged["p50_ms"] = max(r["p50_ms"] for r in runs)
            merged["p99_ms"] = max(r["p99_ms"] for r in runs)
            return merged
        rows[f"users_me_{kind}_tower"] = mean("tower")
        rows[f"users_me_{kind}_poem_mean"] = mean("poem")
print(f"store: {store}; AUTH_CLIENT_CACHE={os.environ.get('AUTH_CLIENT_CACHE', 'false')}; {seconds} s per row\n")
print("Limits (ops/s, the servers' own code, no HTTP):")
names = {"sign": "RS256 sign (SigningKey, aws-lc-rs)",
         "verify": "RS256 verify (aws-lc-rs, key parsed once: the Verifier)",
         "verify_rsa": "RS256 verify, key from n/e per call (jsonwebtoken)",
         "verify_jwt": "jsonwebtoken::decode (header, signature, claims)",
         "verifier": "shared::Verifier::verify (cache off)",
         "argon2": "Argon2id verify m=19456 t=2 p=1"}
for name in names:
    if (name, 1) in limits:
        print(f"  {names[name]:<56} 1 thread {limits[(name, 1)]:>8.0f}   2 threads {limits.get((name, 2), 0):>8.0f}")
print()
header = f"| {'row':<36} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'limit':<18} | {'ratio':>6} | {'target':>6} | met |"
print(header)
print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
for name, label, limit_key, target in table:
    row = rows.get(name)
    if row is None:
        print(f"| {label:<36} | {'failed':>8} | {'':>7} | {'':>7} | {'':<18} | {'':>6} | {'':>6} |     |")
        problems.append(f"{name}: no result")
        continue
    check_errors(name, row)
    ratio_text = limit_text = target_text = met = ""
    if limit_key is not None:
        if isinstance(limit_key, tuple):
            limit = limits.get(limit_key)
            limit_text = f"{limit_key[0]} x{limit_key[1]} {limit:.0f}" if limit else "n/a"
        else:
            limit = rows.get(limit_key, {}).get("rps")
            shown = "poem" if limit_key.endswith("_poem_mean") else limit_key
            limit_text = f"{shown} {limit:.0f}" if limit else "n/a"
        if limit:
            ratio = row["rps"] / limit
            ratio_text = f"{ratio:.0%}"
            target_text = f"{target:.0%}"
            met = "yes" if ratio >= target else "NO"
    print(f"| {label:<36} | {row['rps']:>8.0f} | {row['p50_ms']:>7.2f} | {row['p99_ms']:>7.2f} | {limit_text:<18} | {ratio_text:>6} | {target_text:>6} | {met:<3} |")

print("\nUnpinned: wrk (2 threads) and the servers share both cores; each figure is the whole machine's.")

# The pinned rows: the server under test alone on core 0, wrk (one thread) on core 1, each row
# against the one-thread limit (the one core the server has). cpu.tsv holds, per row, the CPU
# seconds the server and wrk spent and the row's wall time: a core busy ~100% bounds the row.
pinned_table = [
    ("pinned_client_credentials", "POST /token client_credentials", ("sign", 1), 0.80),
    ("pinned_password", "POST /token password", ("argon2", 1), 0.90),
    ("pinned_refresh", "POST /token refresh_token", ("sign", 1), 0.60),
    ("pinned_users_me_reused", "GET /users/me, one token", "pinned_livez_rs", 0.90),
    ("pinned_users_me_fresh", f"GET /users/me, {n_tokens} tokens", ("verify", 1), 0.50),
    ("pinned_client_credentials_uncached", "  the same, AUTH_CLIENT_CACHE=false", ("sign", 1), 0.80),
    ("pinned_livez_auth", "GET /livez (auth-server)", None, None),
    ("pinned_livez_rs", "GET /livez (resource-server)", None, None),
    ("pinned_livez_rs_bearer", "  the same, a token's Authorization", None, None),
]
cpu = {}
try:
    for line in open(cpu_path):
        name, server_s, wrk_s, wall_s = line.split()
        cpu[name] = (float(server_s), float(wrk_s), float(wall_s))
except (OSError, ValueError):
    pass
try:
    pinned_note = open(os.path.join(work, "pinned.txt")).read().strip()
except OSError:
    pinned_note = ""
print()
if pinned_note:
    print(f"Pinned rows: {pinned_note}")
else:
    print("Pinned: the server under test alone on core 0 (started under taskset -c 0), wrk with one thread on")
    print("core 1 (taskset -c 1); limits are the one-thread figures above. 'server' and 'wrk' are each core's")
    print("busy share and CPU microseconds per request: the server's figure is its own cost, wrk's the load")
    print("generator's; the row is bound by the side whose core is (nearly) full.\n")
    header = (f"| {'row (pinned)':<36} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'limit':<18} | {'ratio':>6} "
              f"| {'target':>6} | met | {'server':>15} | {'wrk':>15} | {'bound by':<8} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, label, limit_key, target in pinned_table:
        row = rows.get(name)
        if row is None and name.endswith("_uncached") and os.environ.get("AUTH_CLIENT_CACHE") != "true":
            continue
        if row is None:
            print(f"| {label:<36} | {'failed':>8} |")
            problems.append(f"{name}: no result")
            continue
        check_errors(name, row)
        ratio_text = limit_text = target_text = met = ""
        if isinstance(limit_key, tuple):
            limit = limits.get(limit_key)
            limit_text = f"{limit_key[0]} x1 {limit:.0f}" if limit else "n/a"
        elif limit_key is not None:
            limit = rows.get(limit_key, {}).get("rps")
            limit_text = f"{limit_key.removeprefix('pinned_')} {limit:.0f}" if limit else "n/a"
        else:
            limit = None
        if limit:
            ratio = row["rps"] / limit
            ratio_text, target_text = f"{ratio:.0%}", f"{target:.0%}"
            met = "yes" if ratio >= target else "NO"
        server_text = wrk_text = bound = ""
        if name in cpu and row["requests"] > 0:
            server_s, wrk_s, wall_s = cpu[name]
            busy_server, busy_wrk = server_s / max(wall_s, 1e-9), wrk_s / max(wall_s, 1e-9)
            server_text = f"{busy_server:.0%} {server_s * 1e6 / row['requests']:.1f} us"
            wrk_text = f"{busy_wrk:.0%} {wrk_s * 1e6 / row['requests']:.1f} us"
            if busy_server >= 0.9 and busy_server >= busy_wrk:
                bound = "server"
            elif busy_wrk >= 0.9:
                bound = "wrk"
            else:
                bound = "neither"
        print(f"| {label:<36} | {row['rps']:>8.0f} | {row['p50_ms']:>7.2f} | {row['p99_ms']:>7.2f} | {limit_text:<18} "
              f"| {ratio_text:>6} | {target_text:>6} | {met:<3} | {server_text:>15} | {wrk_text:>15} | {bound:<8} |")

fresh = rows.get("users_me_fresh")
jwt = limits.get(("verify_jwt", 2))
if fresh and jwt:
    print(f"\nThe fresh-token row against jsonwebtoken::decode x2 ({jwt:.0f}/s, a complete JWT verification "
          f"in the library, for comparison): {fresh['rps'] / jwt:.0%}")

print("\nGET /users/me, tower layer against poem (same settings, tokens and wrk options; target >= 95%):")
for kind, label in (("reused", "one token"), ("fresh", f"{n_tokens} tokens")):
    sides = pairs[kind]
    if len(sides) < 2:
        print(f"  {label:<14} failed")
        continue
    runs = {side: ", ".join(f"{run['rps']:.0f}" for _, run in sides[side]) for side in sides}
    ratio = rows[f"users_me_{kind}_tower"]["rps"] / max(rows[f"users_me_{kind}_poem_mean"]["rps"], 1)
    met = "yes" if ratio >= 0.95 else "NO"
    print(f"  {label:<14} poem {runs['poem']} req/s, tower {runs['tower']} req/s: ratio {ratio:.0%} (met: {met})")

hits = {}
try:
    for line in open(hits_path):
        name, count = line.split()
        hits[name] = int(count)
except (OSError, ValueError):
    pass
if hits:
    counts = ", ".join(f"{name} {count} of {int(rows.get(name, {}).get('requests', 0))}" for name, count in hits.items())
    print(f"\nThe fresh-token rows' verifications answered from the token cache: {counts}")

print(f"\nOverload: logins offered at ~4x the password row ({float(password_rate):.0f}/s):")
flood = rows.get("overload_password")
if flood:
    check_errors("overload_password", flood, allow_503=True)
    answered = flood["requests"]
    served = answered - max(flood["s503"], 0)
    offered = answered / flood["seconds"]
    print(f"  logins offered {offered:.0f}/s ({offered / float(password_rate):.1f}x), served {served / flood['seconds']:.0f}/s, "
          f"503 temporarily_unavailable {int(flood['s503'])} ({flood['s503'] / max(answered, 1):.0%}, "
          f"{int(flood['s503_no_retry_after'])} without Retry-After), p50 {flood['p50_ms']:.1f} ms, p99 {flood['p99_ms']:.1f} ms")
for name, label in (("overload_livez", "/livez"), ("overload_jwks", "JWKS")):
    probe = rows.get(name)
    if probe:
        check_errors(name, probe)
        met = "yes" if probe["p99_ms"] < 20 else "NO"
        print(f"  {label:<18} p50 {probe['p50_ms']:.2f} ms, p99 {probe['p99_ms']:.2f} ms, max {probe['max_ms']:.1f} ms (target p99 < 20 ms: {met})")
cc = rows.get("overload_client_credentials")
if cc:
    check_errors("overload_client_credentials", cc)
    met = "yes" if cc["rps"] > 0 and cc["non2xx"] == 0 else "NO"
    print(f"  client_credentials {cc['rps']:.0f}/s, p50 {cc['p50_ms']:.2f} ms, p99 {cc['p99_ms']:.2f} ms, non-2xx {int(cc['non2xx'])} (kept being served: {met})")

print("\nResident memory after the run (MiB, VmHWM = peak; the servers' since their restart after the pinned rows):")
for name in ("auth-server", "resource-server", "users-me-tower"):
    m = memory.get(name, {})
    print(f"  {name:<16} peak {m.get('VmHWM', '?')}, now {m.get('VmRSS', '?')}")

if int(revocation_poll) == 0:
    print("\nRevocation feed: off (RS_REVOCATION_POLL=0), not measured")
else:
    reach = {}
    for line in open(reach_path):
        name, fields = line.rstrip("\n").split("\t", 1)
        reach[name] = {k: float(v) for k, v in (f.split("=") for f in fields.split())}
    load = rows.get("reach_load")
    load_text = f"{load['rps']:.0f} req/s on /users/me meanwhile" if load else "load row missing"
    if load:
        check_errors("reach_load", load)
    else:
        problems.append("reach_load: no result")
    target_ms = (int(revocation_poll) + 1) * 1000
    print(f"\nRevocation reach (RS_REVOCATION_POLL={revocation_poll} s; {load_text}):")
    for name, label in (("revoke", "POST /revoke"), ("disable", "auth-server user disable")):
        r = reach.get(name)
        if r is None:
            print(f"  {label:<26} failed")
            problems.append(f"reach {name}: no result")
            continue
        if r["samples"] < int(reach_count):
            problems.append(f"reach {name}: {int(r['samples'])} samples of {reach_count}")
        met = "yes" if r["p99_ms"] < target_ms else "NO"
        print(f"  {label:<26} to the first 401: {int(r['samples'])} samples, p50 {r['p50_ms']:.0f} ms, "
              f"p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms (target p99 < {target_ms} ms: {met})")
    print(f"\nRevocation feed cost ({int(seed_small)} live entries, one cached token, 32 connections, "
          f"rows on, off, off, on):")
    sides = {}
    for side in ("on", "off"):
        pair = []
        for name in (f"users_me_feed_{side}_1", f"users_me_feed_{side}_2"):
            row = rows.get(name)
            if row is None:
                problems.append(f"{name}: no result")
            else:
                check_errors(name, row)
                pair.append(row)
        if len(pair) == 2:
            sides[side] = pair
    if len(sides) == 2:
        for side, pair in sides.items():
            print(f"  GET /users/me feed {side:<3} {sum(r['rps'] for r in pair) / 2:>8.0f} req/s "
                  f"({pair[0]['rps']:.0f}, {pair[1]['rps']:.0f}), p50 {max(r['p50_ms'] for r in pair):.2f} ms, "
                  f"p99 {max(r['p99_ms'] for r in pair):.2f} ms (worse of the two)")
        on = sum(r["rps"] for r in sides["on"])
        off = sum(r["rps"] for r in sides["off"])
        ratio = on / off if off else 0
        met = "yes" if ratio >= 0.95 else "NO"
        print(f"  ratio on/off {ratio:.0%} (target >= 95%: {met})")
    else:
        print("  failed")
    stages = {}
    try:
        for line in open(feed_memory_path):
            stage, entries, fields = (line.rstrip("\n").split("\t") + ["", ""])[:3]
            stages[stage] = (entries, {k: float(v) for k, v in (f.split("=") for f in fields.split())})
    except (OSError, ValueError):
        pass
    print("\nResource-server memory as the feed grows (MiB):")
    for stage in ("before", "small", "large"):
        if stage in stages:
            entries, m = stages[stage]
            print(f"  {entries or '?':>7} entries held: VmRSS {m.get('VmRSS', 0):.1f}, peak {m.get('VmHWM', 0):.1f}")
    if "before" in stages and "large" in stages:
        before_entries = float(stages["before"][0] or 0)
        grown = float(stages["large"][0] or 0) - before_entries
        delta = stages["large"][1].get("VmRSS", 0) - stages["before"][1].get("VmRSS", 0)
        print(f"  VmRSS delta for {grown:.0f} more entries: {delta:+.1f} MiB ({delta * 1048576 / max(grown, 1):.0f} bytes per entry)")

if problems:
    print("\nErrors:")
    for problem in problems:
        print(f"  {problem}")
    sys.exit(1)
