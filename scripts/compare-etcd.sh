#!/usr/bin/env bash
# compare-etcd.sh: etcd and raftchat under the same load on this machine, one right after
# the other, side by side: writes of 100-byte values by 1, 16, 64 and 256 clients (each a
# sequential loop on its own connection), on 3 and 5 members; then failover (one writer,
# 100 ms per attempt, the leader SIGKILLed), five times each.
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

declare -A ETCD_OPS ETCD_P50 ETCD_P99 RC_OPS RC_P50 RC_P99
for n in 3 5; do
  for c in 1 16 64 256; do
    line="$("$WORK/tools/etcd-anchor.sh" --nodes "$n" put -c "$c" -d "$SECS" | grep '^RESULT')"
    ETCD_OPS[$n,$c]="$(sed -E 's/.* ops_s=([0-9.]+).*/\1/' <<<"$line")"
    ETCD_P50[$n,$c]="$(sed -E 's/.* p50_ms=([0-9.]+).*/\1/' <<<"$line")"
    ETCD_P99[$n,$c]="$(sed -E 's/.* p99_ms=([0-9.]+).*/\1/' <<<"$line")"
  done
done
ETCD_GAPS=()
for n in 3 5; do
  for i in 1 2 3 4 5; do
    line="$("$WORK/tools/etcd-anchor.sh" --nodes "$n" failover --kill-at-ms 2000 --run-ms 6000 --op-timeout-ms 100 | grep '^RESULT')"
    ETCD_GAPS+=("$n:$(sed -E 's/.* max_gap_ms=([0-9.]+).*/\1/' <<<"$line")")
  done
done

"$RC" bench --nodes 3,5 --clients 1,16,64,256 --duration "${SECS}s" --only writes,failover \
  --out "$WORK/raftchat" > "$WORK/raftchat.txt"
# The table rows: "  clients per-sec p50 p99 ..." under "N nodes, writes:".
while read -r n c ops p50 p99; do
  RC_OPS[$n,$c]="$ops"; RC_P50[$n,$c]="$p50"; RC_P99[$n,$c]="$p99"
done < <(awk '/ nodes, writes:/{n=$1; w=1; next} / nodes, /{w=0} w && $1 ~ /^[0-9]+$/ {print n, $1, $2, $3, $4}' "$WORK/raftchat.txt")

echo
echo "writes/s of 100-byte values, each client one request at a time (same machine, same run)"
printf '%-6s %-8s %14s %14s %8s %22s %22s\n' nodes clients etcd raftchat ratio "etcd p50/p99 ms" "raftchat p50/p99 ms"
for n in 3 5; do
  for c in 1 16 64 256; do
    e="${ETCD_OPS[$n,$c]}"; r="${RC_OPS[$n,$c]:-0}"
    ratio="$(awk -v r="$r" -v e="$e" 'BEGIN{printf "%.2f", e ? r/e : 0}')"
    printf '%-6s %-8s %14s %14s %7sx %22s %22s\n' "$n" "$c" "$e" "$r" "$ratio" \
      "${ETCD_P50[$n,$c]}/${ETCD_P99[$n,$c]}" "${RC_P50[$n,$c]:-?}/${RC_P99[$n,$c]:-?}"
  done
done
echo
echo "failover: longest gap between acknowledged writes (ms), leader SIGKILLed"
echo "etcd:     ${ETCD_GAPS[*]}"
echo "raftchat: $(grep -E '^  run [0-9]+:' "$WORK/raftchat.txt" | sed -E 's/.*writes ([0-9]+) ms/\1/' | paste -sd' ')"
echo "          (3 nodes first, then 5; raftchat's full output: below)"
echo
cat "$WORK/raftchat.txt"
