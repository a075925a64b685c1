#!/usr/bin/env bash
# compare-etcd.sh: etcd and raftchat under the same load on this machine, side by side:
# writes of 100-byte values by 1, 16, 64 and 256 clients (each a sequential loop on its own
# connection), on 3 and 5 members; then failover (one writer, 100 ms per attempt, the
# leader SIGKILLed), five times each.
#
# The machine is shared, and its background load drifts within minutes. So each level is
# measured twice, etcd then raftchat, then raftchat then etcd, and the two are averaged:
# a drift between the runs weighs on both sides alike. Besides requests per second, it
# reports the members' CPU time per request (utime and stime of every member, over the
# requests they served), which background load disturbs far less than throughput.
#
# Measuring only: nothing in raftchat's build or tests needs etcd. Set-up, once:
#   apt-get install -y etcd-server etcd-client protobuf-compiler
# It uses ../shared/tools (etcd-anchor.sh and etcd-bench), copied to a temporary folder
# and built there. Usage: scripts/compare-etcd.sh [SECONDS_PER_LEVEL]   (default 3)
set -euo pipefail

SECS="${1:-3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/../shared/tools}"
command -v etcd >/dev/null || { echo "compare-etcd: etcd is not installed (apt-get install etcd-server etcd-client)" >&2; exit 2; }
[[ -x "$TOOLS/etcd-anchor.sh" ]] || { echo "compare-etcd: no etcd-anchor.sh in $TOOLS (set TOOLS=...)" >&2; exit 2; }

WORK="$(mktemp -d /tmp/compare-etcd.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cp -r "$TOOLS" "$WORK/tools"
chmod -R u+w "$WORK/tools"
echo "# building etcd-bench and raftchat (release)..." >&2
# etcd-bench builds into raftchat's target folder, so that the next run reuses it.
export CARGO_TARGET_DIR_ETCD="$ROOT/target/etcd-bench"
(cd "$WORK/tools/etcd-bench" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR_ETCD" cargo build --release --quiet)
mkdir -p "$WORK/tools/etcd-bench/target/release"
ln -sf "$CARGO_TARGET_DIR_ETCD/release/etcd-bench" "$WORK/tools/etcd-bench/target/release/etcd-bench"
(cd "$ROOT" && cargo build --release --quiet)
RC="$ROOT/target/release/raftchat"

# One etcd level: "ops_s p50 p99 member_cpu_us_per_op load_generator_cpu_us_per_op".
etcd_level() {
  local out
  out="$("$WORK/tools/etcd-anchor.sh" --nodes "$1" put -c "$2" -d "$SECS")"
  local result cpu
  result="$(grep '^RESULT' <<<"$out")"
  cpu="$(grep '^CPU' <<<"$out")"
  awk -v r="$result" -v c="$cpu" 'BEGIN {
    n = split(r, f, " "); for (i = 1; i <= n; i++) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
    gen = c; sub(/.*bench cpu-s=/, "", gen); sub(/;.*/, "", gen)
    sub(/.*member cpu-s:/, "", c); sub(/;.*/, "", c)
    m = split(c, g, " "); s = 0; for (i = 1; i <= m; i++) { split(g[i], kv, "="); s += kv[2] }
    printf "%s %s %s %.0f %.0f\n", v["ops_s"], v["p50_ms"], v["p99_ms"], v["ok"] ? s * 1e6 / v["ok"] : 0,
      v["ok"] ? gen * 1e6 / v["ok"] : 0 }'
}

# One raftchat level, on a cluster of its own: "ops_s p50 p99 node_cpu_us_per_op
# load_generator_cpu_us_per_op".
raftchat_level() {
  "$RC" bench --nodes "$1" --clients "$2" --duration "${SECS}s" --only writes \
    --out "$WORK/raftchat" > "$WORK/level.txt"
  awk -v c="$2" '$1 == c && $2 ~ /^[0-9.]+$/ {
    m = split($8, g, "/"); s = 0; for (i = 1; i <= m; i++) s += g[i]
    printf "%s %s %s %.0f %s\n", $2, $3, $4, s, $10; exit }' "$WORK/level.txt"
}

mean() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a + b) / 2 }'; }
# How far apart one system's two runs of a level were, in percent of the lower: the drift
# of the machine's background load during that level, which the ratio cannot see.
spread() { awk -v a="$1" -v b="$2" 'BEGIN { lo = (a < b) ? a : b; hi = (a < b) ? b : a
  printf "%.0f", (lo > 0) ? (hi / lo - 1) * 100 : 0 }'; }

declare -A E R S
for n in 3 5; do
  for c in 1 16 64 256; do
    read -r e1 ep50a ep99a ecpu1 egen1 < <(etcd_level "$n" "$c")
    read -r r1 rp50a rp99a rcpu1 rgen1 < <(raftchat_level "$n" "$c")
    read -r r2 rp50b rp99b rcpu2 rgen2 < <(raftchat_level "$n" "$c")
    read -r e2 ep50b ep99b ecpu2 egen2 < <(etcd_level "$n" "$c")
    E[$n,$c]="$(mean "$e1" "$e2") $(mean "$ep50a" "$ep50b") $(mean "$ep99a" "$ep99b") $(mean "$ecpu1" "$ecpu2") $(mean "$egen1" "$egen2")"
    R[$n,$c]="$(mean "$r1" "$r2") $(mean "$rp50a" "$rp50b") $(mean "$rp99a" "$rp99b") $(mean "$rcpu1" "$rcpu2") $(mean "$rgen1" "$rgen2")"
    es="$(spread "$e1" "$e2")" rs="$(spread "$r1" "$r2")"
    S[$n,$c]="$((es > rs ? es : rs))"
    echo "# $n members, $c clients: etcd $e1 then $e2 writes/s, raftchat $r1 then $r2" >&2
  done
done

ETCD_GAPS=()
for n in 3 5; do
  for i in 1 2 3 4 5; do
    line="$("$WORK/tools/etcd-anchor.sh" --nodes "$n" failover --kill-at-ms 2000 --run-ms 6000 --op-timeout-ms 100 | grep '^RESULT')"
    ETCD_GAPS+=("$n:$(sed -E 's/.* max_gap_ms=([0-9.]+).*/\1/' <<<"$line")")
  done
done
"$RC" bench --nodes 3,5 --only failover --out "$WORK/raftchat" > "$WORK/failover.txt"

echo
echo "writes/s of 100-byte values, each client one request at a time (same machine, each level"
echo "run twice in the order etcd, raftchat, raftchat, etcd, and averaged); CPU: the members' CPU"
echo "time per request, all members together; load gen: the CPU time per request of the load"
echo "generator (etcd-bench against etcd, raftchat bench against raftchat); spread: how far"
echo "apart the two runs of one system were, the larger of the two (over 25%: the machine's"
echo "load changed during the level, and its ratio says little; run it again)"
printf '%-6s %-8s %10s %10s %7s %7s %18s %18s %12s %12s %7s %16s\n' nodes clients etcd raftchat ratio \
  spread "etcd p50/p99 ms" "raftchat p50/p99" "etcd cpu µs" "raftchat cpu" "e/r" "load gen e/r µs"
for n in 3 5; do
  for c in 1 16 64 256; do
    read -r eo ep50 ep99 ecpu egen <<<"${E[$n,$c]}"
    read -r ro rp50 rp99 rcpu rgen <<<"${R[$n,$c]}"
    awk -v n="$n" -v c="$c" -v eo="$eo" -v ro="$ro" -v ep50="$ep50" -v ep99="$ep99" \
      -v rp50="$rp50" -v rp99="$rp99" -v ecpu="$ecpu" -v rcpu="$rcpu" -v egen="$egen" \
      -v rgen="$rgen" -v sp="${S[$n,$c]}" 'BEGIN {
      printf "%-6s %-8s %10.0f %10.0f %6.2fx %6s%% %18s %18s %12.0f %12.0f %6.2fx %16s\n", n, c, eo, ro,
        eo ? ro / eo : 0, sp, sprintf("%.2f/%.2f", ep50, ep99), sprintf("%.2f/%.2f", rp50, rp99),
        ecpu, rcpu, rcpu ? ecpu / rcpu : 0, sprintf("%.0f/%.0f", egen, rgen) }'
  done
done
echo
echo "failover: longest gap between acknowledged writes (ms), leader SIGKILLed"
echo "etcd:     ${ETCD_GAPS[*]}"
echo "raftchat: $(grep -E '^  run [0-9]+:' "$WORK/failover.txt" | sed -E 's/.*writes ([0-9]+) ms/\1/' | paste -sd' ')"
echo "          (3 nodes first, then 5)"
