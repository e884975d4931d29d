# Shared helpers of the benchmark scripts. Source it; it does nothing alone.

# cpu_ticks PID: utime+stime of PID and its direct children, in clock ticks.
cpu_ticks() {
	local pid=$1 total=0 p
	for p in $pid $(pgrep -P "$pid" 2>/dev/null || true); do
		if [ -r "/proc/$p/stat" ]; then
			# Fields 14 and 15; the command name (field 2) may hold spaces,
			# so cut at the closing parenthesis first.
			total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
		fi
	done
	echo "$total"
}

# steal_jiffies: total steal time across CPUs, from /proc/stat.
steal_jiffies() { awk '/^cpu /{print $9}' /proc/stat; }

load1() { cut -d' ' -f1 /proc/loadavg; }

# wait_port HOST PORT: wait up to 10 s for a listener.
wait_port() {
	local i
	for i in $(seq 100); do
		if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on $1:$2" >&2
	return 1
}

# on CPU: prints the command prefix that pins a process to one CPU, or
# nothing on a single-CPU machine or without taskset. Used as
# `$(on 0) cmd &` so that $! is the pinned process itself.
on() {
	if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then
		echo "taskset -c $1"
	fi
}
