// SPDX-License-Identifier: GPL-2.0-only
/*
 * mig-guest MODE - the program the migration tests' Linux guest runs
 * (migrate.sh; built static, it is the whole userspace of the initramfs
 * besides busybox). It keeps a simnic busy while QEMU migrates the VM,
 * checks every value it ever wrote, and reports on the second serial port
 * (ttyS1), one "UVFIO key=value ..." line each.
 *
 * Modes:
 *   bar2  writes a sequence of values into BAR2 (device memory), one
 *         64-bit word at a time: write k (k = 1, 2, ...) stores
 *         0xb2 << 56 | word << 32 | k into word (k * 0x9e3779b1) mod the
 *         number of words, so consecutive writes land on different pages
 *         and each value says which write it was. Before it overwrites a
 *         word it reads it back and compares it with the last value it
 *         wrote there (or, for a word not written yet, the WRITE_PATTERN
 *         word the source simnic was seeded with: uvfio.seed), and BAR0's
 *         SCRATCH with the last value put there at each progress line.
 *   dma   drives the DMA engine: a ring of 64 descriptors and 256 buffer
 *         slots of 4 KiB in the guest RAM the kernel was told to leave
 *         alone (memmap=, uvfio.dma). Descriptor k is a WRITE_PATTERN of
 *         seed dseed(k) into slot k mod 256; at most 8 are outstanding.
 *         Before a buffer slot or ring entry is reused, the output of the
 *         descriptor that last used it (its pattern, its write-back:
 *         status DONE, seq = COUNTER after it) is checked. A page the
 *         device wrote after QEMU had copied it, and that the VMM then did
 *         not copy again, holds an older descriptor's pattern: that is
 *         what this mode exists to catch.
 *   nodev the bar2 mode's loop on a plain array in the program's memory:
 *         the harness's own control, without a device.
 *
 * Protocol on ttyS1 (raw): "ready ..." once set up; a "progress k=..."
 * line about every 50 ms while it works (k: writes or descriptors so far);
 * it works until a line "GO NONCE" arrives (the host sends it to the
 * destination after the migration completed), then prints "go nonce=NONCE"
 * (so everything after it ran on the destination), stops, checks what is
 * left to check (every word of BAR2; every descriptor not checked yet, the
 * device's registers, and that the device carries on), prints "last ..."
 * lines for the host to read back itself through QEMU's monitor, and
 * "verdict=ok|fail nonce=NONCE ...". It then waits for "END" (at most two
 * minutes) and exits; /init powers the guest off.
 *
 * Parameters from the kernel command line: uvfio.bdf (the simnic),
 * uvfio.dma (the reserved RAM, physical), uvfio.seed (the source simnic's
 * seed=), uvfio.seed2 (the destination's, only to name a page that never
 * arrived), uvfio.pace_us (sleep between bursts).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <uvfio/sim/simdev_regs.h>

static int tty_in = -1, tty_out = -1;
static char cmdline[4096];
static unsigned long mismatches;	/* every failed check */
static unsigned reported;		/* mismatch lines printed */
#define REPORT_MAX 12

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		p += r;
		n -= (size_t)r;
	}
}

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "UVFIO ");
	va_list ap;

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	write_all(tty_out, buf, (size_t)n);
}

/* A check failed: count it, print the first REPORT_MAX. */
__attribute__((format(printf, 1, 2))) static void bad(const char *fmt, ...)
{
	char buf[400];
	va_list ap;

	mismatches++;
	if (reported >= REPORT_MAX)
		return;
	reported++;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	say("mismatch %s", buf);
}

__attribute__((noreturn, format(printf, 1, 2))) static void fatal(
	const char *fmt, ...)
{
	char buf[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	say("fatal=%s (errno %d)", buf, errno);
	exit(1);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};

	if (us)
		nanosleep(&ts, NULL);
}

/* uvfio.KEY=VALUE from the kernel command line, or NULL. */
static const char *arg(const char *key)
{
	static char val[256];
	size_t kl = strlen(key);

	for (const char *p = cmdline; (p = strstr(p, key)); p += kl) {
		if ((p != cmdline && p[-1] != ' ') || p[kl] != '=')
			continue;
		size_t n = strcspn(p + kl + 1, " \n");
		if (n >= sizeof(val))
			n = sizeof(val) - 1;
		memcpy(val, p + kl + 1, n);
		val[n] = 0;
		return val;
	}
	return NULL;
}

static uint64_t num_arg(const char *key, bool required, uint64_t def)
{
	const char *v = arg(key);

	if (!v) {
		if (required)
			fatal("no %s= on the kernel command line", key);
		return def;
	}
	return strtoull(v, NULL, 0);
}

/* A line from the host on ttyS1 into out; wait at most timeout_ms. */
static bool get_line(char *out, size_t n, int timeout_ms)
{
	static char lbuf[256];
	static size_t llen;
	uint64_t end = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		for (size_t i = 0; i < llen; i++) {
			if (lbuf[i] != '\n' && lbuf[i] != '\r')
				continue;
			size_t l = i < n - 1 ? i : n - 1;
			memcpy(out, lbuf, l);
			out[l] = 0;
			memmove(lbuf, lbuf + i + 1, llen - i - 1);
			llen -= i + 1;
			if (l)
				return true;
			i = (size_t)-1;	/* an empty line: look again */
		}
		int left = (int)(end > now_ms() ? end - now_ms() : 0);
		struct pollfd p = {.fd = tty_in, .events = POLLIN};
		if (poll(&p, 1, left) <= 0)
			return false;
		ssize_t r = read(tty_in, lbuf + llen, sizeof(lbuf) - llen);
		if (r <= 0)
			return false;
		llen += (size_t)r;
		if (llen == sizeof(lbuf))
			llen = 0;	/* no line that long is ours */
	}
}

static void open_tty(void)
{
	struct termios t;

	tty_out = open("/dev/ttyS1", O_WRONLY | O_NOCTTY);
	tty_in = open("/dev/ttyS1", O_RDONLY | O_NOCTTY | O_NONBLOCK);
	if (tty_out < 0 || tty_in < 0)
		exit(2);
	if (tcgetattr(tty_out, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(tty_out, TCSANOW, &t);
	}
	tcflush(tty_in, TCIFLUSH);
}

/* -------- the device, through sysfs and /dev/mem -------- */

static char devdir[128];

static void sysfs_path(char *buf, size_t n, const char *file)
{
	snprintf(buf, n, "%s/%s", devdir, file);
}

/* BAR n's guest-physical start and size, from the resource file. */
static void bar_resource(int bar, uint64_t *start, uint64_t *size)
{
	char path[192], line[256];
	unsigned long long s, e, f;
	FILE *fp;

	sysfs_path(path, sizeof(path), "resource");
	if (!(fp = fopen(path, "r")))
		fatal("open %s", path);
	for (int i = 0; i <= bar; i++)
		if (!fgets(line, sizeof(line), fp))
			fatal("no BAR%d in %s", bar, path);
	fclose(fp);
	if (sscanf(line, "%llx %llx %llx", &s, &e, &f) != 3 || !s || e <= s)
		fatal("BAR%d unassigned: %s", bar, line);
	*start = s;
	*size = e - s + 1;
}

static void *map_bar(int bar, uint64_t size)
{
	char path[192], file[16];
	void *p;
	int fd;

	snprintf(file, sizeof(file), "resource%d", bar);
	sysfs_path(path, sizeof(path), file);
	if ((fd = open(path, O_RDWR | O_SYNC)) < 0)
		fatal("open %s", path);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		fatal("mmap %s", path);
	close(fd);
	return p;
}

static void *map_phys(uint64_t phys, size_t size)
{
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	void *p;

	if (fd < 0)
		fatal("open /dev/mem");
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)phys);
	if (p == MAP_FAILED)
		fatal("mmap /dev/mem at 0x%" PRIx64, phys);
	close(fd);
	return p;
}

/* Memory decoding on (sysfs enable), and bus mastering if asked. */
static void enable_device(bool master)
{
	char path[192];
	uint16_t cmd;
	int fd;

	sysfs_path(path, sizeof(path), "enable");
	if ((fd = open(path, O_WRONLY)) < 0 || write(fd, "1", 1) != 1)
		fatal("enable %s", path);
	close(fd);
	if (!master)
		return;
	sysfs_path(path, sizeof(path), "config");
	if ((fd = open(path, O_RDWR)) < 0 || pread(fd, &cmd, 2, 4) != 2)
		fatal("read %s", path);
	cmd |= 0x6;	/* memory space, bus master */
	if (pwrite(fd, &cmd, 2, 4) != 2)
		fatal("write %s", path);
	close(fd);
}

static volatile uint32_t *bar0;

static uint32_t rd32(unsigned off)
{
	return bar0[off / 4];
}

static void wr32(unsigned off, uint32_t v)
{
	bar0[off / 4] = v;
}

static uint64_t rd64(unsigned off)
{
	return *(volatile uint64_t *)((volatile char *)bar0 + off);
}

static void map_bar0(void)
{
	uint64_t start, size;

	bar_resource(0, &start, &size);
	bar0 = map_bar(0, size);
	if (rd32(SIMDEV_REG_ID) != SIMDEV_ID_VALUE)
		fatal("BAR0 ID reads 0x%08x, not the simnic's", rd32(SIMDEV_REG_ID));
}

/* SCRATCH carries a tick count across the migration (bar2 mode). */
static uint32_t scratch_last;

static void scratch_tick(void)
{
	uint32_t got = rd32(SIMDEV_REG_SCRATCH);

	if (got != scratch_last)
		bad("what=scratch got=0x%08x want=0x%08x", got, scratch_last);
	wr32(SIMDEV_REG_SCRATCH, ++scratch_last);
}

/* -------- bar2 and nodev: words of device memory (or of RAM) -------- */

static volatile uint64_t *words;	/* BAR2, or an array for nodev */
static uint64_t nwords, words_phys;
static uint32_t *lastk;			/* per word: the last k, 0: none */
static uint32_t wk;			/* writes so far */
static uint64_t seed, seed2;
static bool nodev;

#define WORD_STRIDE 0x9e3779b1u

static uint64_t word_value(uint32_t k, uint64_t w)
{
	return 0xb2ULL << 56 | (w & 0xffffff) << 32 | k;
}

static uint64_t word_initial(uint64_t w)
{
	return nodev ? 0 : simdev_pattern_word(seed, w);
}

static uint64_t word_expected(uint64_t w)
{
	return lastk[w] ? word_value(lastk[w], w) : word_initial(w);
}

static void check_word(uint64_t w, uint64_t got)
{
	uint64_t want = word_expected(w);
	const char *what = "other";
	char older[48] = "";

	if (got == want)
		return;
	if (got == word_initial(w))
		what = "initial";	/* the page from before any write */
	else if (!nodev && got == simdev_pattern_word(seed2, w))
		what = "destination-initial";	/* the page never arrived */
	else if (got >> 56 == 0xb2 && ((got >> 32) & 0xffffff) ==
		 (w & 0xffffff) && (uint32_t)got < lastk[w]) {
		what = "older-write";
		snprintf(older, sizeof(older), " older_k=%u", (uint32_t)got);
	}
	bad("what=word word=%" PRIu64 " got=0x%016" PRIx64
	    " want=0x%016" PRIx64 " last_k=%u kind=%s%s", w, got, want,
	    lastk[w], what, older);
}

static void words_setup(void)
{
	uint64_t size;

	if (nodev) {
		nwords = 1 << 17;
		words = calloc(nwords, 8);
		if (!words)
			fatal("calloc");
	} else {
		seed = num_arg("uvfio.seed", true, 0);
		seed2 = num_arg("uvfio.seed2", false, 0);
		enable_device(false);
		map_bar0();
		wr32(SIMDEV_REG_SCRATCH, scratch_last);
		bar_resource(2, &words_phys, &size);
		nwords = size / 8;
		if (nwords & (nwords - 1))
			fatal("BAR2 of %" PRIu64 " bytes", size);
		words = map_bar(2, size);
	}
	lastk = calloc(nwords, sizeof(*lastk));
	if (!lastk)
		fatal("calloc");
	/* Device memory as the source's seed= made it, every word. */
	for (uint64_t w = 0; w < nwords; w++)
		check_word(w, words[w]);
	say("ready mode=%s words=%" PRIu64 " bar2=0x%" PRIx64
	    " seed=0x%" PRIx64 " initial_bad=%lu", nodev ? "nodev" : "bar2",
	    nwords, words_phys, seed, mismatches);
}

static void words_burst(unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint32_t k = ++wk;
		uint64_t w = (uint64_t)(k * WORD_STRIDE) & (nwords - 1);

		check_word(w, words[w]);
		words[w] = word_value(k, w);
		lastk[w] = k;
	}
}

static void words_progress(void)
{
	uint64_t w = (uint64_t)(wk * WORD_STRIDE) & (nwords - 1);

	if (!nodev)
		scratch_tick();
	say("progress k=%u word=%" PRIu64 " value=0x%016" PRIx64 " bad=%lu",
	    wk, w, wk ? word_value(wk, w) : 0, mismatches);
}

static void words_finish(void)
{
	uint64_t written = 0;

	if (!nodev)
		scratch_tick();
	for (uint64_t w = 0; w < nwords; w++) {
		check_word(w, words[w]);
		written += lastk[w] != 0;
	}
	/* The last writes, for the host to read back through the monitor. */
	for (uint32_t k = wk > 8 ? wk - 7 : 1; k && k <= wk; k++) {
		uint64_t w = (uint64_t)(k * WORD_STRIDE) & (nwords - 1);
		if (!nodev)
			say("last k=%u phys=0x%" PRIx64 " value=0x%016" PRIx64,
			    k, words_phys + 8 * w, word_value(k, w));
	}
	say("checked words=%" PRIu64 " written=%" PRIu64 " writes=%u"
	    " scratch=%u", nwords, written, wk, scratch_last);
}

/* -------- dma: the engine writes guest RAM -------- */

#define RING 64u
#define SLOTS 256u
#define SLOT_LEN 4096u
#define OUTSTANDING 8u
#define BUF_OFF (1u << 20)	/* the buffer, 1 MiB into the region */
#define REGION_LEN (2u << 20)

static volatile struct simdev_desc *ring;
static volatile uint64_t *buf;
static uint64_t dma_phys;
static uint32_t tail;			/* descriptors posted */
static uint32_t data_checked;		/* descriptors 0.. whose data was checked */
static uint32_t ring_checked;		/* and whose write-back was */
static uint64_t counter0, bytes0, writes0;
static uint32_t errors0;

static uint64_t dseed(uint32_t k)
{
	return 0xd1a5eed000000000ULL ^ ((uint64_t)k * 0x100000001b3ULL);
}

static uint64_t slot_phys(uint32_t k)
{
	return dma_phys + BUF_OFF + (uint64_t)(k % SLOTS) * SLOT_LEN;
}

/* Descriptor k's pattern is in its slot, untouched. */
static void check_data(uint32_t k)
{
	volatile uint64_t *p = buf + (k % SLOTS) * (SLOT_LEN / 8);
	unsigned nbad = 0, first = 0;
	uint64_t got0 = 0;

	for (unsigned i = 0; i < SLOT_LEN / 8; i++) {
		uint64_t got = p[i];
		if (got == simdev_pattern_word(dseed(k), i))
			continue;
		if (!nbad++) {
			first = i;
			got0 = got;
		}
	}
	if (!nbad)
		return;
	/* Whose data is it? */
	char kind[40] = "other";
	if (!got0)
		snprintf(kind, sizeof(kind), "zero");
	for (uint32_t g = 1; g <= 64 && (uint64_t)g * SLOTS <= k; g++)
		if (got0 == simdev_pattern_word(dseed(k - g * SLOTS), first))
			snprintf(kind, sizeof(kind), "older-by-%u", g);
	bad("what=data k=%u slot=%u phys=0x%" PRIx64 " bad_words=%u"
	    " first=%u got=0x%016" PRIx64 " kind=%s", k, k % SLOTS,
	    slot_phys(k), nbad, first, got0, kind);
}

/* Descriptor k's ring entry holds its write-back. */
static void check_ring(uint32_t k)
{
	volatile struct simdev_desc *d = &ring[k & (RING - 1)];
	uint32_t seq = (uint32_t)(counter0 + k + 1);

	if (d->status != SIMDEV_DESC_DONE || d->seq != seq ||
	    d->opcode != SIMDEV_OP_WRITE_PATTERN || d->dst != slot_phys(k) ||
	    d->len != SLOT_LEN || d->arg != dseed(k))
		bad("what=ring k=%u status=%u seq=%u want_seq=%u opcode=%u"
		    " arg=0x%" PRIx64, k, d->status, d->seq, seq, d->opcode,
		    (uint64_t)d->arg);
}

/* Check every descriptor below n not checked yet, in order: each once. */
static void check_upto(uint32_t data_n, uint32_t ring_n)
{
	while (data_checked < data_n)
		check_data(data_checked++);
	while (ring_checked < ring_n)
		check_ring(ring_checked++);
}

static void post(uint32_t k)
{
	volatile struct simdev_desc *d = &ring[k & (RING - 1)];

	/* The slot's and the entry's last users are complete (at most
	 * OUTSTANDING < RING <= SLOTS in flight): check them before reuse. */
	check_upto(k >= SLOTS ? k - SLOTS + 1 : 0, k >= RING ? k - RING + 1 : 0);
	d->opcode = SIMDEV_OP_WRITE_PATTERN;
	d->flags = 0;
	d->src = 0;
	d->dst = slot_phys(k);
	d->len = SLOT_LEN;
	d->arg = dseed(k);
	d->result = 0;
	d->status = SIMDEV_DESC_PENDING;
	d->seq = 0;
	d->reserved = 0;
}

static void doorbell(void)
{
	__sync_synchronize();
	wr32(SIMDEV_REG_DOORBELL, tail);
}

static void dma_setup(void)
{
	dma_phys = num_arg("uvfio.dma", true, 0);
	enable_device(true);
	map_bar0();
	char *region = map_phys(dma_phys, REGION_LEN);
	ring = (volatile struct simdev_desc *)region;
	buf = (volatile uint64_t *)(region + BUF_OFF);
	for (size_t i = 0; i < REGION_LEN / 8; i++)
		((volatile uint64_t *)region)[i] = 0;

	if (rd32(SIMDEV_REG_RING_HEAD) || rd32(SIMDEV_REG_RING_TAIL) ||
	    rd32(SIMDEV_REG_RING_DONE))
		fatal("ring indices not 0 after reset");
	counter0 = rd64(SIMDEV_REG_COUNTER_LO);
	bytes0 = rd64(SIMDEV_REG_DMA_BYTES_LO);
	writes0 = rd64(SIMDEV_REG_DMA_WRITES_LO);
	errors0 = rd32(SIMDEV_REG_ERRORS);
	wr32(SIMDEV_REG_RING_BASE_LO, (uint32_t)dma_phys);
	wr32(SIMDEV_REG_RING_BASE_HI, (uint32_t)(dma_phys >> 32));
	wr32(SIMDEV_REG_RING_SIZE, RING);
	wr32(SIMDEV_REG_CTRL, SIMDEV_CTRL_ENABLE);
	if (rd32(SIMDEV_REG_STATUS) != SIMDEV_STATUS_ACTIVE)
		fatal("STATUS 0x%x after enabling", rd32(SIMDEV_REG_STATUS));
	say("ready mode=dma region=0x%" PRIx64 " ring=%u slots=%u len=%u"
	    " counter=%" PRIu64 " dma_bytes=%" PRIu64 " dma_writes=%" PRIu64,
	    dma_phys, RING, SLOTS, SLOT_LEN, counter0, bytes0, writes0);
}

static void dma_burst(void)
{
	uint32_t done = rd32(SIMDEV_REG_RING_DONE);
	bool posted = false;

	while (tail - done < OUTSTANDING) {
		post(tail++);
		posted = true;
	}
	if (posted)
		doorbell();
}

static void dma_status_check(void)
{
	uint32_t st = rd32(SIMDEV_REG_STATUS);

	if (st != SIMDEV_STATUS_ACTIVE)
		bad("what=status status=0x%x errors=%u fault_iova=0x%" PRIx64,
		    st, rd32(SIMDEV_REG_ERRORS), rd64(SIMDEV_REG_FAULT_IOVA_LO));
}

static void dma_progress(void)
{
	dma_status_check();
	say("progress k=%u done=%u counter=%" PRIu64 " verified=%u bad=%lu",
	    tail, rd32(SIMDEV_REG_RING_DONE), rd64(SIMDEV_REG_COUNTER_LO),
	    data_checked, mismatches);
}

/* Wait for everything posted to complete (a bound on a hang). */
static bool dma_drain(void)
{
	uint64_t end = now_ms() + 20000;

	while (rd32(SIMDEV_REG_RING_DONE) != tail) {
		if (now_ms() > end) {
			bad("what=drain done=%u tail=%u status=0x%x",
			    rd32(SIMDEV_REG_RING_DONE), tail,
			    rd32(SIMDEV_REG_STATUS));
			return false;
		}
		sleep_us(1000);
	}
	return true;
}

/* The registers account for exactly the descriptors posted. */
static void dma_check_regs(const char *when)
{
	struct {
		const char *name;
		uint64_t got, want;
	} r[] = {
		{"ring_head", rd32(SIMDEV_REG_RING_HEAD), tail},
		{"ring_tail", rd32(SIMDEV_REG_RING_TAIL), tail},
		{"ring_done", rd32(SIMDEV_REG_RING_DONE), tail},
		{"counter", rd64(SIMDEV_REG_COUNTER_LO), counter0 + tail},
		{"dma_bytes", rd64(SIMDEV_REG_DMA_BYTES_LO),
		 bytes0 + (uint64_t)tail * (SLOT_LEN + sizeof(struct simdev_desc))},
		{"dma_writes", rd64(SIMDEV_REG_DMA_WRITES_LO),
		 writes0 + 2ULL * tail},
		{"errors", rd32(SIMDEV_REG_ERRORS), errors0},
		{"status", rd32(SIMDEV_REG_STATUS), SIMDEV_STATUS_ACTIVE},
	};

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		if (r[i].got != r[i].want)
			bad("what=register when=%s reg=%s got=%" PRIu64
			    " want=%" PRIu64, when, r[i].name, r[i].got,
			    r[i].want);
	say("registers when=%s counter=%" PRIu64 " dma_bytes=%" PRIu64
	    " dma_writes=%" PRIu64 " ring_done=%u errors=%u", when,
	    rd64(SIMDEV_REG_COUNTER_LO), rd64(SIMDEV_REG_DMA_BYTES_LO),
	    rd64(SIMDEV_REG_DMA_WRITES_LO), rd32(SIMDEV_REG_RING_DONE),
	    rd32(SIMDEV_REG_ERRORS));
}

static void dma_finish(void)
{
	dma_drain();
	/* The last SLOTS descriptors, whose slots were not reused. */
	check_upto(tail, tail);
	dma_check_regs("stopped");
	for (uint32_t k = tail > 4 ? tail - 4 : 0; k < tail; k++)
		say("last k=%u phys=0x%" PRIx64 " value=0x%016" PRIx64, k,
		    slot_phys(k), (uint64_t)simdev_pattern_word(dseed(k), 0));

	/* The device carries on: four more, numbered on from its COUNTER. */
	uint32_t first = tail;
	for (int i = 0; i < 4; i++)
		post(tail++);
	doorbell();
	if (dma_drain()) {
		check_upto(tail, tail);
		dma_check_regs("continued");
		for (uint32_t k = first; k < tail; k++)
			say("continued k=%u seq=%u", k,
			    ring[k & (RING - 1)].seq);
	}
	say("checked descriptors=%u verified=%u ring_verified=%u", tail,
	    data_checked, ring_checked);
}

/* -------- main -------- */

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	unsigned pace;
	char line[160], nonce[160] = "";
	int fd;

	open_tty();
	if ((fd = open("/proc/cmdline", O_RDONLY)) < 0 ||
	    read(fd, cmdline, sizeof(cmdline) - 1) <= 0)
		fatal("read /proc/cmdline");
	close(fd);
	pace = (unsigned)num_arg("uvfio.pace_us", false, 500);
	if (strcmp(mode, "nodev")) {
		const char *bdf = arg("uvfio.bdf");
		if (!bdf)
			fatal("no uvfio.bdf=");
		snprintf(devdir, sizeof(devdir), "/sys/bus/pci/devices/%s",
			 bdf);
	}

	bool dma = !strcmp(mode, "dma");
	if (dma)
		dma_setup();
	else if (!strcmp(mode, "bar2") || !strcmp(mode, "nodev")) {
		nodev = !strcmp(mode, "nodev");
		words_setup();
	} else
		fatal("unknown mode '%s'", mode);

	uint64_t next = now_ms();
	for (;;) {
		if (dma)
			dma_burst();
		else
			words_burst(32);
		if (now_ms() >= next) {
			if (dma)
				dma_progress();
			else
				words_progress();
			next = now_ms() + 50;
		}
		if (get_line(line, sizeof(line), 0) &&
		    !strncmp(line, "GO ", 3)) {
			memcpy(nonce, line + 3, strlen(line + 3) + 1);
			break;
		}
		sleep_us(pace);
	}
	/* From here on, this runs where the nonce was sent: the destination. */
	say("go nonce=%s k=%u", nonce, dma ? tail : wk);
	if (dma) {
		dma_status_check();
		dma_finish();
	} else
		words_finish();
	say("verdict=%s nonce=%s mismatches=%lu", mismatches ? "fail" : "ok",
	    nonce, mismatches);
	while (get_line(line, sizeof(line), 120000))
		if (!strcmp(line, "END"))
			break;
	say("exit");
	return 0;
}
