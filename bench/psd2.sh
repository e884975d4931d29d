#!/usr/bin/env bash
# bench/psd2.sh: the example gateway's PSD2 handlers (psd2_qwac + psd2_qseal
# + reverse_proxy) against the same Caddy with the handlers removed, measured
# in one run with interleaved A/B repetitions. Prints server CPU per request
# and throughput, and their ratios against plain Caddy.
#
#   bench/psd2.sh                 # full matrix, 3 runs of 10 s per cell
#   RUNS=5 DURATION=15s bench/psd2.sh
#   SCENARIOS=keepalive BODIES=1.5KB KEYS=2048 bench/psd2.sh
#
# Method (see ../shared/reference/performance-baseline.md): the server is
# pinned to CPU 0, vegeta and the upstream to CPU 1; requests are signed
# before the measured window, each with its own X-Request-ID, and both
# routes get byte-identical requests. Server CPU per request comes from
# /proc/<pid>/stat; it is far steadier than req/s on a shared machine.
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh

RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNS=${CONNS:-32}       # keep-alive pool, closed loop
NEWCONN_WORKERS=${NEWCONN_WORKERS:-8}
SCENARIOS=${SCENARIOS:-"keepalive newconn"}
BODIES=${BODIES:-"1.5KB 100KB"}
KEYS=${KEYS:-"2048 3072"}
PLAIN_PORT=${PLAIN_PORT:-28443}
GW_PORT=${GW_PORT:-28444}
UP_PORT=${UP_PORT:-29000}

out=out/psd2-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out" bin
echo "building (results in $out)" >&2
(cd .. && go build -o bench/bin/bankedge ./cmd/bankedge)
GOFLAGS=-mod=mod go build -o bin/vegeta github.com/tsenart/vegeta/v12
go build -o bin/upstream ./upstream

# PKI: one sandbox QTSP, a QWAC (the TLS client) and QSEALs of both sizes.
pki=$out/pki
export BANKEDGE_P12_PASSWORD=bench
bin/bankedge tpp certs --out "$pki/2048" --org-id PSDGR-BOG-123456 --key-type rsa2048 >/dev/null
mkdir -p "$pki/3072" && cp "$pki/2048"/qtsp-root*.pem "$pki/3072/"
bin/bankedge tpp certs --out "$pki/3072" --org-id PSDGR-BOG-123456 --key-type rsa3072 >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost -keyout "$pki/server-key.pem" -out "$pki/server.pem" 2>/dev/null

# One Caddy, two sites with the same TLS policy: A is plain reverse_proxy,
# B adds the handlers. The replay window is short so that a few thousand
# pre-signed requests can cycle without being replays; the cache still does
# its full work on every request.
cat >"$out/Caddyfile" <<CADDY
{
	admin off
	persist_config off
	skip_install_trust
	storage file_system $PWD/$out/storage
	log {
		level ERROR
	}
}
(mtls) {
	tls $PWD/$pki/server.pem $PWD/$pki/server-key.pem {
		client_auth {
			mode require
		}
	}
}
https://localhost:$PLAIN_PORT {
	import mtls
	reverse_proxy 127.0.0.1:$UP_PORT
}
https://localhost:$GW_PORT {
	import mtls
	psd2_qwac {
		trust_pool file $PWD/$pki/2048/qtsp-root.pem
	}
	psd2_qseal {
		profile piraeus
		trust_pool file $PWD/$pki/2048/qtsp-root.pem
		require_signature
		replay_window 100ms
		max_body_size 256KiB
	}
	reverse_proxy 127.0.0.1:$UP_PORT {
		header_up X-TPP-Org-Id {psd2.tpp.org_id}
		header_up X-TPP-Roles {psd2.tpp.roles}
	}
}
CADDY

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
$(on 1) bin/upstream -listen 127.0.0.1:$UP_PORT &
pids+=($!)
XDG_DATA_HOME=$PWD/$out/xdg XDG_CONFIG_HOME=$PWD/$out/xdg $(on 0) bin/bankedge run --config "$out/Caddyfile" --adapter caddyfile >"$out/caddy.log" 2>&1 &
server=$!
pids+=($server)
wait_port 127.0.0.1 $PLAIN_PORT
wait_port 127.0.0.1 $GW_PORT
wait_port 127.0.0.1 $UP_PORT

# Bodies: minified JSON of the given size (what a Piraeus TPP sends).
make_body() {
	python3 - "$1" <<'PY'
import json, sys
n = int(float(sys.argv[1].rstrip("KB")) * (1000 if "." in sys.argv[1] else 1024))
lines, i = [], 0
doc = lambda: json.dumps({"instructedAmount": {"currency": "EUR", "amount": "123.50"}, "remittance": lines}, separators=(",", ":"))
while len(doc()) < n:
    lines.append("line %06d of the remittance information" % i); i += 1
sys.stdout.write(doc())
PY
}

targets() { # body key -> targets file for the gateway; the plain file differs only in the port
	local body=$1 key=$2 n=2048
	[ "$body" = 100KB ] && n=1024
	local f=$out/targets-$body-$key
	if [ ! -f "$f.gw.json" ]; then
		make_body "$body" >"$f.body.json"
		bin/bankedge tpp sign --profile piraeus --qwac "$pki/$key/qwac.pem" --qseal "$pki/$key/qseal.pem" \
			--data @"$f.body.json" --vegeta $n https://localhost:$GW_PORT/v1/payments/sepa-credit-transfers >"$f.gw.json"
		sed "s/localhost:$GW_PORT/localhost:$PLAIN_PORT/" "$f.gw.json" >"$f.plain.json"
	fi
	echo "$f"
}

attack() { # scenario targets-file key seconds -> vegeta results file
	local scenario=$1 tf=$2 key=$3 dur=$4 res=$5
	local args=(-format=json -targets="$tf" -duration="$dur" -timeout=30s -insecure -http2=false
		-cert="$pki/$key/qwac.pem" -key="$pki/$key/qwac-key.pem" -rate=0)
	if [ "$scenario" = keepalive ]; then
		args+=(-keepalive=true -workers=$CONNS -max-workers=$CONNS -connections=$CONNS)
	else
		args+=(-keepalive=false -workers=$NEWCONN_WORKERS -max-workers=$NEWCONN_WORKERS)
	fi
	$(on 1) bin/vegeta attack "${args[@]}" >"$res"
}

results=$out/results.txt
: >"$results"
clk=$(getconf CLK_TCK)
for scenario in $SCENARIOS; do
	for body in $BODIES; do
		for key in $KEYS; do
			tf=$(targets "$body" "$key")
			cell="$scenario/$body/rsa$key"
			for route in plain gw; do attack "$scenario" "$tf.$route.json" "$key" "$WARMUP" /dev/null; done
			for run in $(seq "$RUNS"); do
				for route in plain gw; do
					res=$out/res-${scenario}-${body}-${key}-${route}-$run.bin
					t0=$(cpu_ticks $server) s0=$(steal_jiffies) l=$(load1)
					attack "$scenario" "$tf.$route.json" "$key" "$DURATION" "$res"
					t1=$(cpu_ticks $server) s1=$(steal_jiffies)
					bin/vegeta report -type=json "$res" | python3 -c '
import json, sys
r = json.load(sys.stdin)
ok = round(r["requests"] * r["success"])
cpu = (int(sys.argv[2]) / int(sys.argv[3]))
print(sys.argv[1], "ok=%d" % ok, "req=%d" % r["requests"], "rps=%.1f" % r["throughput"],
      "p50_ms=%.2f" % (r["latencies"]["50th"] / 1e6), "p99_ms=%.2f" % (r["latencies"]["99th"] / 1e6),
      "cpu_s=%.2f" % cpu, "us_per_req=%.1f" % (cpu * 1e6 / ok if ok else 0),
      "codes=%s" % ",".join("%s:%d" % kv for kv in sorted(r["status_codes"].items())),
      "load1=%s" % sys.argv[4], "steal=%s" % sys.argv[5])
' "$cell $route run$run" $((t1 - t0)) "$clk" "$l" $((s1 - s0)) | tee -a "$results"
				done
			done
		done
	done
done

echo
echo "== medians [min..max] over $RUNS runs; ratios are gateway vs plain Caddy (CPU ratio = plain µs / gateway µs)"
python3 - "$results" <<'PY'
import re, statistics, sys
cells = {}
for line in open(sys.argv[1]):
    cell, route, _ = line.split()[:3]
    kv = dict(f.split("=", 1) for f in line.split()[3:])
    cells.setdefault(cell, {}).setdefault(route, []).append(kv)
def med(xs): return statistics.median(xs)
fmt = "{:<26} {:>10} {:>10} {:>9} {:>12} {:>12} {:>9} {:>9}"
print(fmt.format("scenario", "plain µs", "gw µs", "Δ µs", "plain rps", "gw rps", "CPU ×", "rps ×"))
for cell, routes in cells.items():
    p, g = routes.get("plain", []), routes.get("gw", [])
    if not p or not g: continue
    pu = [float(x["us_per_req"]) for x in p]; gu = [float(x["us_per_req"]) for x in g]
    pr = [float(x["rps"]) for x in p]; gr = [float(x["rps"]) for x in g]
    bad = [x["codes"] for x in g if any(not c.startswith("200:") for c in x["codes"].split(","))]
    print(fmt.format(cell, "%.0f" % med(pu), "%.0f" % med(gu), "%+.0f" % (med(gu) - med(pu)),
                     "%.0f" % med(pr), "%.0f" % med(gr), "%.2f" % (med(pu) / med(gu)), "%.2f" % (med(gr) / med(pr))))
    print(fmt.format("", "[%.0f..%.0f]" % (min(pu), max(pu)), "[%.0f..%.0f]" % (min(gu), max(gu)), "", "", "", "", ""))
    if bad: print("   non-200 answers on the gateway:", bad)
PY
