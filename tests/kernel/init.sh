#!/bin/busybox sh
# The guest's /init (busybox, Debian's Linux 6.12) for run.sh: load the
# VFIO modules and the kernel's mtty sample, create two mtty devices and
# run uvfio's programs against them through the kernel's VFIO, as a host
# runs them. This script decides nothing: every command's exit status,
# output and files go back to the host on the second serial port
# (ttyS1; the kernel's console is ttyS0), and run.sh judges them.
#
# What goes to ttyS1, one item per line:
#   UVFIO-FILE NAME / base64 lines / UVFIO-END NAME   a file
#   UVFIO-CMD NAME ARGS...                           a command starts
#   UVFIO-RC NAME STATUS                             and its exit status
#   UVFIO-DONE                                       the end (then poweroff)
# Command NAME's stdout and stderr are the files NAME.out and NAME.err.
#
# Kernel command line (run.sh sets it):
#   uvfio.type=TYPE       the mdev type to create (mtty-1, mtty-2)
#   uvfio.a=UUID          the device under test
#   uvfio.b=UUID          its peer, the destination of round trips
#   uvfio.timeout=SECS    the limit for each command
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /out
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# uvfio's programs and their libraries (run.sh put them there).
export PATH=/uvfio/bin:/bin:/sbin LD_LIBRARY_PATH=/uvfio/lib

arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p"; }
type=$(arg uvfio.type)
a=$(arg uvfio.a)
b=$(arg uvfio.b)
limit=$(arg uvfio.timeout)
A=/sys/bus/mdev/devices/$a
B=/sys/bus/mdev/devices/$b

tty=/dev/ttyS1
send() {	# send NAME PATH
	{
		echo "UVFIO-FILE $1"
		base64 "$2"
		echo "UVFIO-END $1"
	} >$tty
}
# run NAME CMD...: CMD's exit status, stdout and stderr to the host.
run() {
	name=$1
	shift
	echo "uvfio: $name: $*" >/dev/console
	echo "UVFIO-CMD $name $*" | tr '\n\t' '  ' >$tty
	echo >$tty
	timeout -s KILL "${limit:-240}" "$@" >"/out/$name.out" 2>"/out/$name.err"
	rc=$?
	send "$name.out" "/out/$name.out"
	send "$name.err" "/out/$name.err"
	echo "UVFIO-RC $name $rc" >$tty
	return $rc
}
finish() {
	for f in "$@"; do
		[ -f "/out/$f" ] && send "$f" "/out/$f"
	done
	dmesg >/out/dmesg.txt
	send dmesg.txt /out/dmesg.txt
	echo "UVFIO-DONE" >$tty
	sync
	poweroff -f
}

# The modules, dependencies first (run.sh wrote the order).
for m in $(cat /lib/modules/load-order); do
	run "insmod-${m%.ko}" insmod "/lib/modules/$m" || finish
done
run mdev-types sh -c 'cd /sys/class/mdev_bus/mtty/mdev_supported_types &&
	for t in *; do echo "$t $(cat $t/name) available=$(cat $t/available_instances)"; done' ||
	finish
run create sh -c "echo $a >/sys/class/mdev_bus/mtty/mdev_supported_types/$type/create &&
	echo $b >/sys/class/mdev_bus/mtty/mdev_supported_types/$type/create &&
	ls -l $A/iommu_group $B/iommu_group /dev/vfio" || finish

# A gets a state of its own (the scratch register of its first port), so
# that saving it and loading it into B moves something.
run poke-a1 region-poke "$A" 0 7 0x5a
run info vfio-mig-ctl info --json "$A"
run fsm vfio-mig-ctl fsm "$A"
run save-a vfio-mig-ctl save "$A" -o /out/a.bin --json
run save-b0 vfio-mig-ctl save "$B" -o /out/b0.bin
# The default (io_uring) engine: mtty's resuming file has no splice_write,
# so its first splice into the data fd fails and the engine goes on with
# buffers (tools/lib/uring_engine.cc), as with any such kernel driver.
run load-b vfio-mig-ctl load "$B" -i /out/a.bin --json
run save-b1 vfio-mig-ctl save "$B" -o /out/b1.bin
# And A differs from B again for the suite's round trip.
run poke-a2 region-poke "$A" 0 7 0xa5
# B is the peer: the destination of the suite's round trips.
run conformance vfio-mig-ctl conformance --device "$A" --peer "$B" \
	--junit /out/junit.xml
# The suite's own program, its --peer, on a new state of A.
run poke-a3 region-poke "$A" 0 7 0x3c
run conformance-peer uvfio-conformance --device "$A" --peer "$B" \
	--gtest_filter='*RoundTrip*'
if [ -x /uvfio/bin/uvfio-parity ]; then
	run parity uvfio-parity "$A"
fi
finish a.bin b0.bin b1.bin junit.xml
