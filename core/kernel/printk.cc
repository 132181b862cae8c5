// SPDX-License-Identifier: GPL-2.0-only
/*
 * printk (the kernel's kernel/printk/printk.c): the log sink behind
 * pr_err(), dev_err() and friends, one line per message, to stderr or to
 * the callback set with uvfio_set_log_fn().
 */
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include <uvfio/linux/device.h>
#include <uvfio/linux/kernel.h>
#include <uvfio/uvfio.h>

#include "runtime.h"

namespace {

int level_from_env()
{
	const char *s = std::getenv("UVFIO_LOG_LEVEL");
	if (!s || !*s)
		return UVFIO_LOG_WARNING;
	if (!strcmp(s, "err") || !strcmp(s, "error"))
		return UVFIO_LOG_ERR;
	if (!strcmp(s, "warning") || !strcmp(s, "warn"))
		return UVFIO_LOG_WARNING;
	if (!strcmp(s, "info"))
		return UVFIO_LOG_INFO;
	if (!strcmp(s, "debug"))
		return UVFIO_LOG_DEBUG;
	char *end;
	long v = std::strtol(s, &end, 10);
	if (*end || v < 0 || v > 7)
		return UVFIO_LOG_WARNING;
	return static_cast<int>(v);
}

struct log_sink {
	std::mutex lock;
	uvfio_log_fn fn = nullptr;
	void *opaque = nullptr;
	std::atomic<int> level{level_from_env()};
};

log_sink &sink()
{
	/* Never destroyed: drivers may log from exit-time teardown. */
	static log_sink *s = new log_sink;
	return *s;
}

std::string vformat(const char *fmt, va_list ap)
{
	char small[256];
	va_list ap2;
	va_copy(ap2, ap);
	int n = std::vsnprintf(small, sizeof(small), fmt, ap);
	if (n < 0) {
		va_end(ap2);
		return "(bad log format)";
	}
	std::string out;
	if (static_cast<size_t>(n) < sizeof(small)) {
		out.assign(small, n);
	} else {
		out.resize(n + 1);
		std::vsnprintf(out.data(), n + 1, fmt, ap2);
		out.resize(n);
	}
	va_end(ap2);
	while (!out.empty() && out.back() == '\n')
		out.pop_back();
	return out;
}

} // namespace

/* Error lines this thread has emitted (the bus uses it around probe). */
static thread_local unsigned long err_lines;

unsigned long uvfio_log_err_lines(void)
{
	return err_lines;
}

bool uvfio_log_enabled(int level)
{
	return level <= sink().level.load(std::memory_order_relaxed);
}

void uvfio_log_line(int level, const std::string &line)
{
	if (level <= UVFIO_LOG_ERR)
		err_lines++;
	if (!uvfio_log_enabled(level))
		return;
	log_sink &s = sink();
	std::lock_guard<std::mutex> l(s.lock);
	if (s.fn) {
		s.fn(level, line.c_str(), s.opaque);
		return;
	}
	std::fprintf(stderr, "uvfio: %s\n", line.c_str());
}

namespace {

/*
 * printk()'s body: format only a line that goes somewhere. Error lines are
 * always formatted, since uvfio_log_line() counts them.
 */
void vprintk(int level, const struct device *dev, bool dev_prefix,
	     const char *fmt, va_list ap)
{
	if (!uvfio_log_enabled(level) && level > UVFIO_LOG_ERR)
		return;
	std::string line = vformat(fmt, ap);
	if (dev_prefix)
		line = (dev ? dev->name : std::string("(no device)")) + ": " +
		       line;
	uvfio_log_line(level, line);
}

} // namespace

void uvfio_printk(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintk(level, nullptr, false, fmt, ap);
	va_end(ap);
}

void uvfio_dev_printk(int level, const struct device *dev, const char *fmt,
		      ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintk(level, dev, true, fmt, ap);
	va_end(ap);
}

void uvfio_warn_on(const char *cond, const char *file, int line)
{
	uvfio_printk(LOGLEVEL_WARNING, "WARNING: %s at %s:%d", cond, file, line);
}

void uvfio_lockdep_fail(const char *what, const char *file, int line)
{
	uvfio_printk(LOGLEVEL_ERR, "BUG: %s not held at %s:%d", what, file,
		     line);
}

extern "C" void uvfio_set_log_fn(uvfio_log_fn fn, void *opaque)
{
	log_sink &s = sink();
	std::lock_guard<std::mutex> l(s.lock);
	s.fn = fn;
	s.opaque = opaque;
}

extern "C" int uvfio_set_log_level(int level)
{
	return sink().level.exchange(level);
}
