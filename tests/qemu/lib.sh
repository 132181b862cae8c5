# lib.sh - helpers the QEMU tests share; sourced (bash), not run.
#
#   qemu_test_init         skip (exit 77) when UVFIO_QEMU_SKIP says so;
#                          set $qemu, or fail naming the Debian package
#   need_busybox           /bin/busybox with devmem (busybox-static)
#   guest_kernel CACHE [--modules NAME,...]
#                          set $kernel (fetch-kernel.sh, which keeps the
#                          modules named beside it), or skip/fail
#   make_initramfs OUT INIT [SRC DEST]...
#                          a gzipped newc cpio of busybox, INIT as /init
#                          and each SRC at DEST
#   Monitors: QEMU with `-monitor stdio` reading a fifo and writing a file.
#     mon_open NAME        make NAME's fifo and output file; start QEMU
#                          with <"$(mon_in NAME)" >"$(mon_out NAME)", then:
#     mon_attach NAME PID  open the fifo for writing; PID is QEMU's (or
#                          timeout's around it)
#     mon_wait NAME [N]    wait for the first prompt (N tenths of a second)
#     hmp NAME CMD [N]     send CMD, wait for the next prompt (N tenths of
#                          a second, default 600); the reply (the output
#                          and the prompt, not the echo of CMD) is in
#                          "$(mon_reply NAME)"; 1 if QEMU is gone or no
#                          prompt came
#     mon_close NAME       close the fifo (QEMU sees EOF on its monitor)
# Everything lives in $tmp, which the caller makes (and removes).

qemu_test_init() {
	if [ -n "${UVFIO_QEMU_SKIP:-}" ]; then
		echo "SKIP: $UVFIO_QEMU_SKIP"
		exit 77
	fi
	qemu=$(command -v qemu-system-x86_64) ||
		{ echo "FAIL: qemu-system-x86_64 not found (Debian package qemu-system-x86; make deps)"; exit 1; }
}

need_busybox() {
	[ -x /bin/busybox ] && /bin/busybox --list | grep -x devmem >/dev/null ||
		{ echo "FAIL: /bin/busybox with devmem not found (Debian package busybox-static; make deps)"; exit 1; }
}

# UVFIO_GUEST_OFFLINE=skip skips when the kernel cannot be downloaded;
# without it that is a failure.
guest_kernel() {
	local cache=$1
	shift
	if ! kernel=$("$(dirname "${BASH_SOURCE[0]}")/fetch-kernel.sh" "$@" "$cache"); then
		if [ "${UVFIO_GUEST_OFFLINE:-}" = skip ]; then
			echo "SKIP: no guest kernel (UVFIO_GUEST_OFFLINE=skip)"
			exit 77
		fi
		echo "FAIL: no guest kernel could be fetched; set UVFIO_GUEST_OFFLINE=skip to skip this test offline"
		exit 1
	fi
	echo "kernel: $kernel"
}

# The initramfs: busybox, /init and the given files, nothing else. Every
# driver the tests need is built into Debian's kernel; with no modules,
# nothing binds the simnic (1b36:0010 is also QEMU's NVMe controller,
# which nvme.ko claims).
make_initramfs() {
	local out=$1 init=$2 root
	shift 2
	root=$(mktemp -d "$tmp/initramfs.XXXXXX")
	mkdir -p "$root/bin"
	cp /bin/busybox "$root/bin/busybox"
	install -m 0755 "$init" "$root/init"
	while [ $# -ge 2 ]; do
		mkdir -p "$root/$(dirname "$2")"
		install -m 0755 "$1" "$root/$2"
		shift 2
	done
	(cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) |
		gzip -1 >"$out"
	rm -rf "$root"
}

declare -A mon_fd mon_pid
mon_in() { echo "$tmp/$1.mon.in"; }
mon_out() { echo "$tmp/$1.mon.out"; }
mon_reply() { echo "$tmp/$1.mon.reply"; }
mon_open() {
	rm -f "$(mon_in "$1")"
	mkfifo "$(mon_in "$1")"
	: >"$(mon_out "$1")"
	trap '' PIPE	# a write to a QEMU that exited fails, and is reported
}
mon_attach() {
	local fd
	mon_pid[$1]=$2
	exec {fd}>"$(mon_in "$1")"
	mon_fd[$1]=$fd
}
mon_prompts() { { grep -o '(qemu)' "$(mon_out "$1")" || true; } | wc -l; }
mon_wait() {
	local i
	for ((i = 0; i < ${2:-600}; i++)); do
		[ "$(mon_prompts "$1")" -gt 0 ] && return 0
		kill -0 "${mon_pid[$1]}" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
hmp() {
	local n off i name=$1
	n=$(mon_prompts "$name")
	off=$(stat -c %s "$(mon_out "$name")")
	echo "$2" >&"${mon_fd[$name]}" 2>/dev/null || return 1	# QEMU is gone
	for ((i = 0; i < ${3:-600} * 5; i++)); do
		if [ "$(mon_prompts "$name")" -gt "$n" ]; then
			# Without the echo of CMD (line 1, redrawn by readline).
			tail -c +$((off + 1)) "$(mon_out "$name")" | tr -d '\r' |
				sed '1d' >"$(mon_reply "$name")"
			return 0
		fi
		kill -0 "${mon_pid[$name]}" 2>/dev/null || break
		sleep 0.02
	done
	: >"$(mon_reply "$name")"
	return 1
}
mon_close() {
	local fd=${mon_fd[$1]:-}
	if [ -n "$fd" ]; then
		exec {fd}>&-
		unset "mon_fd[$1]"
	fi
}
