#!/bin/busybox sh
# The guest's /init (busybox, Linux 6.12) for migrate.sh: mount what
# mig-guest needs and run it in the mode the kernel command line names
# (uvfio.mode=bar2|dma|nodev); it reports on ttyS1. Then power off.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mode=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^uvfio\.mode=//p')
/bin/mig-guest "$mode"
echo "UVFIO exit=$?" >/dev/ttyS1
poweroff -f
