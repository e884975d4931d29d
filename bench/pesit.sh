#!/usr/bin/env bash
# bench/pesit.sh: 1 GiB PeSIT transfers, uploads and downloads, over plain
# TCP and TLS (mTLS), through four paths measured in one run:
#
#   direct   raw TCP from tcpblast to tcpblast: the machine's ceiling
#   l4proxy  the PeSIT peer pair through caddy-l4's proxy alone
#   gateway  the PeSIT peer pair through the bankedge gateway (pesit + proxy)
#   peers    the PeSIT peer pair, requester straight to pesit_server
#
# plus raw TCP through caddy-l4's proxy (l4raw), the reference's "0.26x".
# Uploads also run into pesitsink, a PeSIT server that checks every FPDU
# and discards the data, so that the receiver's tmpfs page allocation
# (1-2.5 s of system CPU per GiB here) does not set the pace:
#
#   l4proxy-sink  requester -> caddy-l4 proxy -> pesitsink
#   gateway-sink  requester -> gateway (pesit + proxy) -> pesitsink
#   peers-sink    requester -> pesitsink
#
# Prints MB/s, the proxy's CPU seconds per GB, and the ratios the issue
# targets: gateway / l4proxy (>= 1.0) and gateway / direct for uploads
# (>= 0.6), the latter also as gateway-sink / direct. Everything runs
# unpinned, as in the reference TCP suite.
#
#   bench/pesit.sh            # 3 interleaved runs of every path
#   RUNS=1 SIZE_MB=256 bench/pesit.sh
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh

RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-1024}
TRANSPORTS=${TRANSPORTS:-"plain tls"}
bytes=$((SIZE_MB << 20))
out=out/pesit-$(date +%Y%m%d-%H%M%S)
shm=$(mktemp -d /dev/shm/bankedge-bench.XXXXXX)
mkdir -p "$out" bin
echo "building (results in $out, data in $shm)" >&2
(cd .. && go build -o bench/bin/bankedge ./cmd/bankedge)
go build -o bin/tcpblast ./tcpblast
go build -o bin/pesitsink ./pesitsink

pki=$out/pki
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
	-keyout "$pki/ca-key.pem" -out "$pki/ca.pem" 2>/dev/null
leaf() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" -keyout "$pki/$1-key.pem" -out "$pki/$1.csr" 2>/dev/null
	printf 'subjectAltName=DNS:localhost\n' >"$pki/ext"
	openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca-key.pem" -CAcreateserial -days 2 \
		-extfile "$pki/ext" -out "$pki/$1.pem" 2>/dev/null
}
leaf localhost
leaf client

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_SINK=$(port) P_SOURCE=$(port) P_UP=$(port) P_UPTLS=$(port) P_HTTPS=$(port)
P_RAW_UP=$(port) P_RAW_DOWN=$(port) P_RAW_UP_TLS=$(port) P_RAW_DOWN_TLS=$(port)
P_PROXY=$(port) P_PROXY_TLS=$(port) P_GW=$(port) P_GW_TLS=$(port)
P_PSINK=$(port) P_PSINK_TLS=$(port) P_PROXY_SINK=$(port) P_PROXY_SINK_TLS=$(port) P_GW_SINK=$(port) P_GW_SINK_TLS=$(port)

tls_policy="connection_policy {
					default_sni localhost
					client_auth {
						mode require_and_verify
						trust_pool file $PWD/$pki/ca.pem
					}
				}"
globals() {
	cat <<G
{
	admin off
	persist_config off
	skip_install_trust
	storage file_system $PWD/$out/storage-$1
	log {
		level ERROR
	}
	$2
}
https://localhost:$3 {
	tls $PWD/$pki/localhost.pem $PWD/$pki/localhost-key.pem
	respond "certificate holder"
}
G
}
# The upstream: a PeSIT server on tmpfs, plain and TLS, in its own process.
globals upstream "layer4 {
		127.0.0.1:$P_UP {
			route {
				pesit_server $shm/files
			}
		}
		127.0.0.1:$P_UPTLS {
			route {
				tls {
					$tls_policy
				}
				pesit_server $shm/files
			}
		}
	}" $(port) >"$out/upstream.caddyfile"
# The proxy under test: every path's listener in one process.
proxied() { # addr upstream handlers tls
	if [ "$4" = tls ]; then
		printf '\t\t127.0.0.1:%s {\n\t\t\troute {\n\t\t\t\ttls {\n\t\t\t\t\t%s\n\t\t\t\t}\n\t\t\t\t%s\n\t\t\t\tproxy 127.0.0.1:%s\n\t\t\t}\n\t\t}\n' "$1" "$tls_policy" "$3" "$2"
	else
		printf '\t\t127.0.0.1:%s {\n\t\t\troute {\n\t\t\t\t%s\n\t\t\t\tproxy 127.0.0.1:%s\n\t\t\t}\n\t\t}\n' "$1" "$3" "$2"
	fi
}
gw="pesit {
					server_id BANKEDGE
				}"
globals proxy "bankedge {
		ca {
			key_passphrase bench-only
		}
		partners {
			partner BENCH {
				password Bench-Pass-12
				allowed_ips 127.0.0.1/32
			}
		}
	}
	layer4 {
$(proxied $P_RAW_UP $P_SINK "" plain)
$(proxied $P_RAW_DOWN $P_SOURCE "" plain)
$(proxied $P_RAW_UP_TLS $P_SINK "" tls)
$(proxied $P_RAW_DOWN_TLS $P_SOURCE "" tls)
$(proxied $P_PROXY $P_UP "" plain)
$(proxied $P_PROXY_TLS $P_UP "" tls)
$(proxied $P_GW $P_UP "$gw" plain)
$(proxied $P_GW_TLS $P_UP "$gw" tls)
$(proxied $P_PROXY_SINK $P_PSINK "" plain)
$(proxied $P_PROXY_SINK_TLS $P_PSINK "" tls)
$(proxied $P_GW_SINK $P_PSINK "$gw" plain)
$(proxied $P_GW_SINK_TLS $P_PSINK "$gw" tls)
	}" $P_HTTPS >"$out/proxy.caddyfile"

pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	rm -rf "$shm"
}
trap cleanup EXIT
bin/tcpblast sink -listen 127.0.0.1:$P_SINK >/dev/null &
pids+=($!)
bin/tcpblast source -listen 127.0.0.1:$P_SOURCE -bytes $bytes >/dev/null &
pids+=($!)
# The discard sink: plain for the proxies, mTLS for peers-sink over TLS.
bin/pesitsink -listen 127.0.0.1:$P_PSINK -tls-listen 127.0.0.1:$P_PSINK_TLS \
	-cert "$pki/localhost.pem" -key "$pki/localhost-key.pem" -ca "$pki/ca.pem" >/dev/null 2>"$out/sink.log" &
sink=$!
pids+=($sink)
XDG_DATA_HOME=$PWD/$out/xdg XDG_CONFIG_HOME=$PWD/$out/xdg bin/bankedge run --config "$out/upstream.caddyfile" --adapter caddyfile >"$out/upstream.log" 2>&1 &
upstream=$!
pids+=($upstream)
XDG_DATA_HOME=$PWD/$out/xdg XDG_CONFIG_HOME=$PWD/$out/xdg BANKEDGE_CA_PASSWORD=x bin/bankedge run --config "$out/proxy.caddyfile" --adapter caddyfile >"$out/proxy.log" 2>&1 &
proxy=$!
pids+=($proxy)
for p in $P_SINK $P_SOURCE $P_UP $P_UPTLS $P_GW $P_GW_TLS $P_PROXY $P_RAW_UP $P_PSINK $P_PSINK_TLS $P_GW_SINK; do wait_port 127.0.0.1 $p; done

echo "making a ${SIZE_MB} MiB file" >&2
head -c $bytes /dev/urandom >"$shm/upload.bin"
mkdir -p "$shm/files"
cp "$shm/upload.bin" "$shm/files/DOWNLOAD.BIN"

pesit() { # up|down transport port
	local args=(--to "localhost:$3" --partner BENCH --password Bench-Pass-12 --server-id BANKEDGE)
	if [ "$2" = tls ]; then
		args+=(--tls --cert "$pki/client.pem" --key "$pki/client-key.pem" --ca "$pki/ca.pem")
	fi
	if [ "$1" = up ]; then
		bin/bankedge pesit send "$shm/upload.bin" --file-name UPLOAD.BIN "${args[@]}" 2>/dev/null
	else
		bin/bankedge pesit fetch DOWNLOAD.BIN -o /dev/null "${args[@]}" 2>/dev/null
	fi
}
blast() { # up|down transport port
	local args=(-to "127.0.0.1:$3")
	[ "$2" = tls ] && args+=(-tls -cert "$pki/client.pem" -key "$pki/client-key.pem")
	if [ "$1" = up ]; then bin/tcpblast send "${args[@]}" -bytes $bytes >/dev/null; else bin/tcpblast recv "${args[@]}" >/dev/null; fi
}

results=$out/results.txt
: >"$results"
clk=$(getconf CLK_TCK)
measure() { # label dir transport cpu-pid command...
	local label=$1 dir=$2 tr=$3 cpupid=$4
	shift 4
	local t0 c0 s0 t1 c1 s1
	c0=$( [ "$cpupid" = - ] && echo 0 || cpu_ticks "$cpupid") s0=$(steal_jiffies) t0=$(date +%s.%N)
	"$@"
	t1=$(date +%s.%N) s1=$(steal_jiffies)
	c1=$( [ "$cpupid" = - ] && echo 0 || cpu_ticks "$cpupid")
	python3 -c '
import sys
label, d, tr, t0, t1, c0, c1, clk, n, load, steal = sys.argv[1:]
secs = float(t1) - float(t0); gb = int(n) / 1e9
cpu = (int(c1) - int(c0)) / int(clk)
print(label, d, tr, "mbps=%.1f" % (int(n) / 1e6 / secs), "seconds=%.2f" % secs,
      "proxy_cpu_s_per_gb=%.2f" % (cpu / gb), "load1=%s" % load, "steal=%s" % steal)
' "$label" "$dir" "$tr" "$t0" "$t1" "$c0" "$c1" "$clk" $bytes "$(load1)" $((s1 - s0)) | tee -a "$results"
}

sinks=0 # uploads into pesitsink, checked against its log at the end
for run in $(seq "$RUNS"); do
	for tr in $TRANSPORTS; do
		for dir in up down; do
			if [ "$tr" = plain ]; then
				measure direct $dir $tr - blast $dir plain $([ $dir = up ] && echo $P_SINK || echo $P_SOURCE)
				measure l4raw $dir $tr $proxy blast $dir plain $([ $dir = up ] && echo $P_RAW_UP || echo $P_RAW_DOWN)
				measure l4proxy $dir $tr $proxy pesit $dir plain $P_PROXY
				measure gateway $dir $tr $proxy pesit $dir plain $P_GW
				measure peers $dir $tr $upstream pesit $dir plain $P_UP
				if [ $dir = up ]; then
					measure l4proxy-sink $dir $tr $proxy pesit $dir plain $P_PROXY_SINK
					measure gateway-sink $dir $tr $proxy pesit $dir plain $P_GW_SINK
					measure peers-sink $dir $tr $sink pesit $dir plain $P_PSINK
					sinks=$((sinks + 3))
				fi
			else
				measure l4raw $dir $tr $proxy blast $dir tls $([ $dir = up ] && echo $P_RAW_UP_TLS || echo $P_RAW_DOWN_TLS)
				measure l4proxy $dir $tr $proxy pesit $dir tls $P_PROXY_TLS
				measure gateway $dir $tr $proxy pesit $dir tls $P_GW_TLS
				measure peers $dir $tr $upstream pesit $dir tls $P_UPTLS
				if [ $dir = up ]; then
					measure l4proxy-sink $dir $tr $proxy pesit $dir tls $P_PROXY_SINK_TLS
					measure gateway-sink $dir $tr $proxy pesit $dir tls $P_GW_SINK_TLS
					measure peers-sink $dir $tr $sink pesit $dir tls $P_PSINK_TLS
					sinks=$((sinks + 3))
				fi
			fi
		done
	done
done
cmp "$shm/upload.bin" "$shm/files/UPLOAD.BIN" || { echo "the uploaded file differs at the server" >&2; exit 1; }
# Each upload into the sink must have ended with the whole size counted,
# ACK(TRANS.END) agreed and CRF clean.
good=$(grep -c "received UPLOAD.BIN bytes=$bytes .* ok=true outcome=deselected" "$out/sink.log" || true)
[ "$good" = "$sinks" ] || { echo "pesitsink logged $good good uploads of $sinks (see $out/sink.log)" >&2; exit 1; }

echo
echo "== medians over $RUNS runs (MB/s, CPU s/GB of the proxy; for peers and peers-sink, of the server)"
python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    kv = dict(x.split("=", 1) for x in f[3:])
    rows.setdefault((f[0], f[1], f[2]), []).append(kv)
med = lambda k, key: statistics.median(float(x[key]) for x in rows[k]) if k in rows else None
fmt = "{:<13} {:<5} {:<5} {:>9} {:>18} {:>12}"
order = ["direct", "l4raw", "l4proxy", "gateway", "peers", "l4proxy-sink", "gateway-sink", "peers-sink"]
print(fmt.format("path", "dir", "net", "MB/s", "[min..max]", "CPU s/GB"))
for k in sorted(rows, key=lambda k: (k[2], k[1], order.index(k[0]))):
    v = [float(x["mbps"]) for x in rows[k]]
    print(fmt.format(*k, "%.0f" % med(k, "mbps"), "[%.0f..%.0f]" % (min(v), max(v)), "%.2f" % med(k, "proxy_cpu_s_per_gb")))
print()
for tr in ("plain", "tls"):
    for d in ("up", "down"):
        g, p, direct = med(("gateway", d, tr), "mbps"), med(("l4proxy", d, tr), "mbps"), med(("direct", d, "plain"), "mbps")
        if g and p:
            line = "%-5s %-4s gateway / caddy-l4 proxy = %.2fx" % (tr, d, g / p)
            if direct:
                line += "   gateway / direct TCP = %.2fx" % (g / direct)
            print(line)
print()
# Uploads into the discard sink: the receiver's file writes are out of the
# way, so these ratios are about the gateway itself.
for tr in ("plain", "tls"):
    gs, ps, cs = (med((p, "up", tr), "mbps") for p in ("gateway-sink", "peers-sink", "l4proxy-sink"))
    direct = med(("direct", "up", "plain"), "mbps")
    if not gs:
        continue
    line = "%-5s up   sink: gateway-sink / direct TCP = %.2fx" % (tr, gs / direct) if direct else "%-5s up   sink:" % tr
    if ps:
        line += "   gateway-sink / peers-sink = %.2fx" % (gs / ps)
    if cs:
        line += "   gateway-sink / l4proxy-sink = %.2fx" % (gs / cs)
    print(line)
PY
