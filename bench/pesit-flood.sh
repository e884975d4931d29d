#!/usr/bin/env bash
# bench/pesit-flood.sh: the credential-free outage of the "hostile traffic"
# issue, point 1, against the example configuration (bankedge sandbox),
# loopback only, bounded in count and time.
#
# The gateway runs with a low descriptor limit (prlimit). The attack holds
# stalled TLS handshakes (the first bytes of a ClientHello, then nothing)
# on the XS2A port and the PeSIT TLS port, and stalled PeSIT NSDUs on the
# PeSIT TCP port, from many loopback source addresses, for HOLD; then it
# lets go and probes every listener: a PeSIT CONNECT of the sandbox partner
# DEMO over TCP and over mTLS, and a TLS handshake on the XS2A port.
#
# Before the guard, the PeSIT listeners stayed dead after such an attack
# (caddy-l4 v0.1.2's accept loop returns on EMFILE) and stalled handshakes
# stayed open on the PeSIT TLS port. Now the script must print "accepts"
# for every listener, and the PeSIT ports close the stalled connections
# after pre_auth_timeout or refuse them beyond the caps.
#
# A probe also runs during the attack, for information. Every listener of
# the example is guarded (XS2A included): its caps keep descriptors free,
# and the ports serve during the attack as long as the attacker's
# addresses times max_pre_auth_per_ip (16) stay below max_pre_auth (256),
# e.g. SOURCES=10; more addresses fill a port's cap until their
# connections time out (pre_auth_timeout). XS2A=0 attacks only the PeSIT
# ports.
#
#   bench/pesit-flood.sh
#   CONNS=500 HOLD=10s NOFILE=256 bench/pesit-flood.sh
#   XS2A=0 bench/pesit-flood.sh
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh

CONNS=${CONNS:-2000}     # stalled connections per attacked port
SOURCES=${SOURCES:-200}  # loopback source addresses (127.0.0.2 …)
HOLD=${HOLD:-20s}        # how long the attack holds them (at most 2m)
NOFILE=${NOFILE:-512}    # the gateway's descriptor limit
XS2A=${XS2A:-1}          # 0: leave the XS2A port alone
BINARY=${BINARY:-}       # another bankedge binary to attack (default: build this tree)
out=out/pesit-flood-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out" bin
echo "building (results in $out)" >&2
if [ -z "$BINARY" ]; then
	(cd .. && go build -o bench/bin/bankedge ./cmd/bankedge)
	BINARY=bin/bankedge
fi
go build -o bin/flood ./flood

# Free on every address: the example binds :PORT, and the attack's own
# sockets (127.0.0.x) linger in TIME_WAIT after a run.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("",0)); print(s.getsockname()[1])'; }
export BANKEDGE_XS2A_PORT=$(port) BANKEDGE_ASPSP_PORT=$(port) BANKEDGE_API_PORT=$(port) BANKEDGE_ADMIN_PORT=$(port)
export BANKEDGE_PESIT_PORT=$(port) BANKEDGE_PESITS_PORT=$(port) BANKEDGE_PESIT_UPSTREAM_PORT=$(port)
export XDG_DATA_HOME=$PWD/$out/xdg XDG_CONFIG_HOME=$PWD/$out/xdg

# exec, so that $! is the gateway itself.
limit() {
	if command -v prlimit >/dev/null; then
		exec prlimit --nofile="$NOFILE:$NOFILE" "$@"
	else
		ulimit -n "$NOFILE" && exec "$@"
	fi
}
limit "$BINARY" sandbox --dir "$out/sandbox" >"$out/gateway.log" 2>&1 &
gw=$!
trap 'kill $gw 2>/dev/null || true; wait $gw 2>/dev/null || true' EXIT
for _ in $(seq 300); do
	grep -q "bankedge sandbox ready" "$out/gateway.log" && break
	kill -0 $gw 2>/dev/null || { cat "$out/gateway.log"; exit 1; }
	sleep 0.1
done
fds() { ls /proc/$gw/fd 2>/dev/null | wc -l; }
probe() {
	bin/flood probe -sandbox "$out/sandbox" -pesit 127.0.0.1:$BANKEDGE_PESIT_PORT \
		-pesits 127.0.0.1:$BANKEDGE_PESITS_PORT -https 127.0.0.1:$BANKEDGE_XS2A_PORT "$@"
}

echo "gateway pid $gw, descriptor limit $NOFILE, $(fds) descriptors open"
echo "before the attack:"
probe -within 5s
tls_targets=127.0.0.1:$BANKEDGE_PESITS_PORT
[ "$XS2A" = 0 ] || tls_targets=127.0.0.1:$BANKEDGE_XS2A_PORT,$tls_targets
echo "attack: $CONNS connections per port ($tls_targets, 127.0.0.1:$BANKEDGE_PESIT_PORT) from $SOURCES addresses, held $HOLD"
bin/flood attack -conns "$CONNS" -sources "$SOURCES" -hold "$HOLD" -targets "$tls_targets" -plain 127.0.0.1:$BANKEDGE_PESIT_PORT &
attack=$!
sleep 5
echo "during the attack: $(fds) descriptors open (this probe is for information)"
probe -within 3s || true
wait $attack
echo "after the attack: $(fds) descriptors open"
status=0
probe -within 10s || status=$?
retries=$(grep -c "accepting connections failed; retrying" "$out/gateway.log" || true)
refusals=$(grep -c "too many unauthenticated connections" "$out/gateway.log" || true)
echo "guard log lines: $retries on descriptor exhaustion, $refusals on caps (one per 10 s at most)"
if [ "$status" -eq 0 ]; then
	echo "RESULT: every listener accepts after the attack"
else
	echo "RESULT: a listener no longer accepts (see $out/gateway.log)"
fi
exit $status
