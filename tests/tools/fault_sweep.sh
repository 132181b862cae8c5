#!/bin/sh
# Contract: every fault point vfio-mig-ctl lists (--fault list, with the
# plugins on UVFIO_DRIVER_PATH, so a plugin's own points too), armed
# against migrate, save, load, send and recv, ends the command without a
# hang (each run under a timeout; the other end of send/recv too) with
# exit 0 (the command never reached the point) or 1 and a message naming
# the point; never 2 or a crash. After each failure a save left the file
# it would replace as it was, and no temporary file; after each command's
# sweep a run without faults succeeds.
#
# make test runs a subset (the first point under each prefix, the
# plugin's, and a few chosen); with CI=true (as .ci/run sets it) or
# UVFIO_FAULT_SWEEP=all, every point.
#
# usage: fault_sweep.sh PATH_TO_VFIO_MIG_CTL PATH_TO_PLUGSKEL_SO
set -u
ctl=$1
plugin=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
export UVFIO_DRIVER_PATH
UVFIO_DRIVER_PATH=$(dirname "$plugin")
# Seconds a run may take before it counts as a hang.
limit=60

"$ctl" --fault list >"$tmp/list" || { echo "FAIL: --fault list"; exit 1; }
grep -q '^plugskel\.save_state ' "$tmp/list" ||
	{ echo "FAIL: the plugin's point is not listed"; exit 1; }
all=$(awk '{print $1}' "$tmp/list")

if [ "${CI:-}" = true ] || [ "${UVFIO_FAULT_SWEEP:-}" = all ]; then
	points=$all
	echo "sweep: every point ($(echo "$points" | wc -l))"
else
	# One point per two-part prefix (mig.arc, mig.data, dma, ...), the
	# plugin's, and the points the manual's examples name.
	points=$(echo "$all" | awk -F. '{ p = $1 "." $2 } !seen[p]++' )
	points=$(printf '%s\n' $points plugskel.save_state mig.data.read \
		'mig.arc.STOP->STOP_COPY' simdev.load_state | sort -u)
	echo "sweep: a subset ($(echo "$points" | wc -l) of" \
		"$(echo "$all" | wc -l) points; UVFIO_FAULT_SWEEP=all for all)"
fi

# The devices a point is tried on: its driver's own for a driver's point.
src_of() {
	case $1 in
	plugskel.*) echo plugskel,bdf=00:02.0 ;;
	skeleton.*) echo skeleton,bdf=00:02.0 ;;
	testdev.*) echo "testdev,bdf=00:02.0,mig=stop_copy|pre_copy|p2p,log=1" ;;
	*) echo simnic,bdf=00:02.0,mem=1M,seed=5 ;;
	esac
}
dst_of() { src_of "$1" | sed 's/bdf=00:02.0/bdf=00:03.0/; s/,seed=5//'; }

# verdict WHAT POINT RC ERRFILE: 0 (not reached) or 1 naming the point.
verdict() {
	case $3 in
	0) ;;
	1) fired=$((fired + 1))
	   grep -qF -- "$2" "$4" || {
		echo "FAIL: $1: exit 1 without naming $2:"; cat "$4"
		fails=$((fails + 1)); return 1; } ;;
	124) echo "FAIL: $1: no end within $limit s"; fails=$((fails + 1)); return 1 ;;
	*) echo "FAIL: $1: exit $3:"; cat "$4"; fails=$((fails + 1)); return 1 ;;
	esac
	return 0
}

# The good stream of each kind of device, for load, and a file save must
# keep when it fails.
good() {
	f=$tmp/good.$(src_of "$1" | cut -d, -f1)
	[ -f "$f" ] || "$ctl" save "$(src_of "$1")" -o "$f" >/dev/null 2>"$tmp/err" ||
		{ echo "FAIL: saving $f"; cat "$tmp/err"; fails=$((fails + 1)); }
	echo "$f"
}

# recv_start DST [FAULT...]: a receiver on a free port, its port in $port
# ("" if it ended before listening), its pid in $rpid.
recv_start() {
	dst=$1; shift
	rm -f "$tmp/recv.err"
	timeout $limit "$ctl" "$@" recv "$dst" --listen 127.0.0.1:0 \
		>"$tmp/recv.out" 2>"$tmp/recv.err" &
	rpid=$!
	port=
	for _ in $(seq 600); do
		port=$(sed -n 's/^recv: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' \
			"$tmp/recv.err" 2>/dev/null)
		[ -n "$port" ] && return 0
		kill -0 $rpid 2>/dev/null || return 0
		sleep 0.1
	done
}

# run CMD POINT: one armed run of CMD (the receiver's or sender's other
# end unarmed), its verdict.
run() {
	cmd=$1; p=$2
	src=$(src_of "$p"); dst=$(dst_of "$p")
	f=--fault; a=$p
	case $cmd in
	migrate)
		# The budget is not what this sweeps: never exit 3 for it.
		extra="--downtime-budget 600000"
		case $src in simnic*) extra="$extra --workload --warmup-ms 20" ;; esac
		# shellcheck disable=SC2086
		timeout $limit "$ctl" $f "$a" migrate $extra "$src" "$dst" \
			>/dev/null 2>"$tmp/err"
		verdict "migrate --fault $p" "$p" $? "$tmp/err"
		;;
	save)
		g=$(good "$p")
		cp "$g" "$tmp/out.bin"
		timeout $limit "$ctl" $f "$a" save "$src" -o "$tmp/out.bin" \
			>/dev/null 2>"$tmp/err"
		rc=$?
		verdict "save --fault $p" "$p" $rc "$tmp/err" || return
		if [ $rc = 1 ] && ! cmp -s "$g" "$tmp/out.bin"; then
			echo "FAIL: save --fault $p changed the file it failed to replace"
			fails=$((fails + 1))
		fi
		if ls -A "$tmp" | grep -q '^\.out\.bin\.'; then
			echo "FAIL: save --fault $p left a temporary file"
			fails=$((fails + 1)); rm -f "$tmp"/.out.bin.*
		fi
		;;
	load)
		g=$(good "$p")
		timeout $limit "$ctl" $f "$a" load "$dst" -i "$g" \
			>/dev/null 2>"$tmp/err"
		verdict "load --fault $p" "$p" $? "$tmp/err"
		;;
	send|recv)
		if [ $cmd = recv ]; then
			recv_start "$dst" $f "$a"
		else
			recv_start "$dst"
		fi
		if [ -n "$port" ]; then
			if [ $cmd = send ]; then
				timeout $limit "$ctl" $f "$a" send "$src" \
					--to "127.0.0.1:$port" >/dev/null 2>"$tmp/err"
			else
				timeout $limit "$ctl" send "$src" \
					--to "127.0.0.1:$port" >/dev/null 2>"$tmp/err"
			fi
			src_rc=$?
		else
			src_rc=0	# the receiver ended before listening
		fi
		wait $rpid
		recv_rc=$?
		if [ $cmd = send ]; then
			verdict "send --fault $p" "$p" $src_rc "$tmp/err"
			# The receiver ends too: loaded (0) or truncated (1).
			case $recv_rc in 0|1) ;; *)
				echo "FAIL: send --fault $p: recv exit $recv_rc:"
				cat "$tmp/recv.err"; fails=$((fails + 1)) ;;
			esac
		else
			verdict "recv --fault $p" "$p" $recv_rc "$tmp/recv.err"
			case $src_rc in 0|1) ;; *)
				echo "FAIL: recv --fault $p: send exit $src_rc:"
				cat "$tmp/err"; fails=$((fails + 1)) ;;
			esac
		fi
		;;
	esac
}

for cmd in migrate save load send recv; do
	before=$fails
	n=0
	fired=0
	for p in $points; do
		run $cmd "$p"
		n=$((n + 1))
	done
	# Clean runs after the sweep, on the devices the points used.
	for p in simnic.x plugskel.x; do
		case $cmd in
		migrate) "$ctl" migrate --downtime-budget 600000 "$(src_of $p)" "$(dst_of $p)" >/dev/null 2>"$tmp/err" ;;
		save) "$ctl" save "$(src_of $p)" -o "$tmp/clean.bin" >/dev/null 2>"$tmp/err" ;;
		load) "$ctl" load "$(dst_of $p)" -i "$(good $p)" >/dev/null 2>"$tmp/err" ;;
		send|recv)
			recv_start "$(dst_of $p)"
			"$ctl" send "$(src_of $p)" --to "127.0.0.1:$port" >/dev/null 2>"$tmp/err" &&
				wait $rpid ;;
		esac || { echo "FAIL: $cmd: a clean run after the sweep:"; cat "$tmp/err"
			  fails=$((fails + 1)); }
	done
	# A sweep in which nothing fires would prove nothing.
	[ $fired -gt 0 ] || { echo "FAIL: $cmd: no point fired"; fails=$((fails + 1)); }
	[ $fails = $before ] && echo "ok: $cmd: $n points ($fired fired, named)," \
		"and clean runs after"
done

if [ $fails != 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
