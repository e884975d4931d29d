#!/usr/bin/env bash
# bench/ca.sh: the CA and registry rows of issue 12, on a CA of 100,000
# certificates (10,000 of them revoked) and a registry of 10,000 partners,
# on file_system storage and on a real Redis (append-only, fsync always)
# where redis-server is installed. It runs the Go benchmarks
# BenchmarkScale of modules/ca/authority and modules/ca/registry (their
# comments say how the data is made) and prints each row with today's
# figure, the previous code path's where it still runs, and the target:
#
#   row                                      storage  today                before          target
#   GET inventory, first page of 50          file     1.2 ms [p90 2.0]     …               ≤ 50 ms   ok
#
# "today" is the median of the operation over the run [its 90th
# percentile]; "cold" rows are on a new instance each time, as a gateway
# that has just started has it (opened, the CRL read, nothing of the index
# cached). The registry rows are the median of
# RUNS runs of the Go benchmark [min..max]. Everything is also kept in
# bench/out/ca-<time>/.
#
#   bench/ca.sh
#   CERTS=20000 REVOKED=2000 PARTNERS=2000 STORAGE=file bench/ca.sh
#
# Variables: CERTS (100000), REVOKED (10000), PARTNERS (10000), STORAGE
# (file and redis; "file" or "redis" for one), BENCHTIME (2s per CA
# sub-benchmark), RUNS (3, registry runs).
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh

CERTS=${CERTS:-100000}
REVOKED=${REVOKED:-10000}
PARTNERS=${PARTNERS:-10000}
BENCHTIME=${BENCHTIME:-2s}
RUNS=${RUNS:-3}
out=out/ca-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
if ! command -v redis-server >/dev/null; then
	echo "redis-server is not installed (Debian package redis-server): file_system only" >&2
	STORAGE=${STORAGE:-file}
fi
export BANKEDGE_CA_BENCH_CERTS=$CERTS BANKEDGE_CA_BENCH_REVOKED=$REVOKED BANKEDGE_CA_BENCH_PARTNERS=$PARTNERS
export BANKEDGE_CA_BENCH_STORAGE=${STORAGE:-}

echo "load1 $(load1) at start; results in $out" >&2
echo "filling a CA of $CERTS certificates ($REVOKED revoked, $PARTNERS partners) per storage; this takes minutes" >&2
(cd .. && go test -v -run '^$' -bench '^BenchmarkScale$' -benchtime "$BENCHTIME" -timeout 3h ./modules/ca/authority) \
	>"$out/authority.txt" 2>"$out/authority.err" || { tail -30 "$out/authority.txt" "$out/authority.err" >&2; exit 1; }
echo "registry of $PARTNERS partners, $RUNS runs" >&2
(cd .. && go test -v -run '^$' -bench '^BenchmarkScale$' -benchtime 3s -count "$RUNS" -timeout 1h ./modules/ca/registry) \
	>"$out/registry.txt" 2>"$out/registry.err" || { tail -30 "$out/registry.txt" "$out/registry.err" >&2; exit 1; }
echo "load1 $(load1) at end" >&2

# metric FILE NAME UNIT: the value before UNIT on the benchmark line NAME.
metric() {
	awk -v n="$2" -v u="$3" '$1 ~ "^BenchmarkScale/" n "(-[0-9]+)?$" { for (i = 2; i <= NF; i++) if ($i == u) print $(i-1) }' "$1"
}
# med FILE NAME: "median [p90 …]" of a CA sub-benchmark, in ms.
med() {
	local m p
	m=$(metric "$1" "$2" median-ms | tail -1)
	p=$(metric "$1" "$2" p90-ms | tail -1)
	[ -n "$m" ] && printf '%.1f ms [p90 %.1f]' "$m" "$p" || echo "-"
}
# runs FILE NAME: median [min..max] of ns/op over the runs, in µs.
runs() {
	metric "$1" "$2" ns/op | sort -g | awk '{v[NR]=$1/1000} END { if (NR) printf "%.1f µs [%.1f..%.1f]", v[int((NR+1)/2)], v[1], v[NR]; else print "-" }'
}
# verdict VALUE_TEXT LIMIT: ok when the leading number is at most LIMIT.
verdict() {
	awk -v t="$1" -v l="$2" 'BEGIN { split(t, a, " "); if (a[1] == "-") print ""; else if (a[1] + 0 <= l) print "ok"; else print "MISSED" }'
}

row() { printf '%-52s %-6s %-24s %-24s %s\n' "$@"; }
{
	echo
	echo "How the data was made:"
	grep -h 'scale_bench_test.go' "$out/authority.txt" "$out/registry.txt" | sed 's/^ *scale_bench_test.go:[0-9]*: /  /' | sort -u
	echo
	row "row" "store" "today" "before" "target"
	for s in ${STORAGE:-file redis}; do
		f=$out/authority.txt
		grep -q "BenchmarkScale/$s/" "$f" || continue
		v=$(med "$f" "$s/inventory-first-page-50")
		row "GET inventory ($CERTS), first page of 50" "$s" "$v" "$(med "$f" "$s/inventory-partner-50-before-index")" "≤ 50 ms $(verdict "$v" 50)"
		v=$(med "$f" "$s/inventory-first-page-50-cold")
		row "  same, cold (a gateway just started)" "$s" "$v" "" "≤ 50 ms $(verdict "$v" 50)"
		v=$(med "$f" "$s/inventory-partner-50")
		row "GET inventory, filter by partner (50)" "$s" "$v" "$(med "$f" "$s/inventory-partner-50-before-index")" "≤ 50 ms $(verdict "$v" 50)"
		v=$(med "$f" "$s/inventory-partner-50-cold")
		row "  same, cold" "$s" "$v" "" "≤ 50 ms $(verdict "$v" 50)"
		row "  status=valid, 50" "$s" "$(med "$f" "$s/inventory-valid-50")" "" ""
		row "  status=expired, 50 (cold)" "$s" "$(med "$f" "$s/inventory-expired-50") ($(med "$f" "$s/inventory-expired-50-cold" | cut -d' ' -f1-2))" "" ""
		row "  status=revoked, 50" "$s" "$(med "$f" "$s/inventory-revoked-50")" "" ""
		row "  first page of 1000 / half-way page of 1000" "$s" "$(med "$f" "$s/inventory-first-page-1000" | cut -d' ' -f1-2) / $(med "$f" "$s/inventory-middle-page-1000" | cut -d' ' -f1-2)" "" ""
		row "  the whole inventory (Issued, the CA gauges)" "$s" "$(med "$f" "$s/inventory-all")" "" ""
		v=$(med "$f" "$s/revoke-with-crl")
		row "revoke one, $REVOKED+ revoked, incl. the new CRL" "$s" "$v" "$(med "$f" "$s/revoke-with-crl-before-log")" "≤ 100 ms $(verdict "$v" 100)"
		v=$(med "$f" "$s/revoke-with-crl-cold")
		row "  same, cold" "$s" "$v" "" "≤ 100 ms $(verdict "$v" 100)"
		r=$out/registry.txt
		v=$(runs "$r" "$s/authenticate-hit-$PARTNERS-partners")
		row "partner authentication, $PARTNERS partners, hit" "$s" "$v" "1 partner: $(runs "$r" "$s/authenticate-hit-1-partner" | cut -d' ' -f1-2)" "21–25 µs, unchanged"
		row "  list all $PARTNERS partners" "$s" "$(metric "$r" "$s/list-$PARTNERS-partners" median-ms | sort -g | awk '{v[NR]=$1} END {if (NR) printf "%.0f ms", v[int((NR+1)/2)]}')" "" ""
	done
	echo
	echo "\"before\": the previous code paths, run in the same process on the same data: the"
	echo "inventory read by loading every record (as GET did), and a revocation rewriting"
	echo "the whole list and signing the CRL with crypto/x509 alone (emulated, on a copy)."
} | tee "$out/summary.txt"
