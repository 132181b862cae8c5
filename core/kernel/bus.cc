// SPDX-License-Identifier: GPL-2.0-only
/*
 * The simulated PCI bus (the kernel's drivers/base/bus.c and the PCI
 * driver registration of drivers/pci/pci-driver.c): the registry of
 * drivers, spec parsing, and the lifetime of pci_devs created by
 * uvfio_sim_add() and removed by uvfio_sim_remove().
 */
#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <uvfio/linux/kernel.h>
#include <uvfio/linux/pci.h>
#include <uvfio/uvfio.h>

#include "bus.h"
#include "runtime.h"

/*
 * Characters compared while spec keys were looked up on this thread: the
 * one part of parsing that is not a single pass, counted so a test holds
 * it to n log n in the spec's length (tests/core/test_syscall.cc).
 */
static thread_local u64 spec_key_work;

u64 uvfio_spec_key_work(void)
{
	return spec_key_work;
}

namespace {

struct spec_key_less {
	using is_transparent = void;
	bool operator()(std::string_view a, std::string_view b) const
	{
		spec_key_work += 1 + std::min(a.size(), b.size());
		return a < b;
	}
};

} // namespace

struct uvfio_spec {
	std::string text;
	std::string driver;
	std::string bdf;
	/* In the order given: the first unknown key is the one reported. */
	std::vector<std::pair<std::string, std::string>> keys;
	/*
	 * Key -> its index in keys, so neither the duplicate check nor a
	 * driver's lookup scans every key (a long spec was quadratic).
	 */
	std::map<std::string, size_t, spec_key_less> index;
};

namespace {

struct pci_bus {
	std::mutex lock;
	std::map<std::string, const struct pci_driver *> drivers;
	std::map<std::string, struct pci_dev *> devices;
	/*
	 * Serializes adds, so a BDF is checked and probed by one caller at a
	 * time. Remove takes the device off the bus map first instead, so it
	 * never waits behind a probe (it may wait for users a long time).
	 */
	std::mutex probe_lock;
};

pci_bus &bus()
{
	static pci_bus *b = new pci_bus;
	return *b;
}

bool parse_hex(const std::string &s, size_t digits, unsigned long max,
	       unsigned long *out)
{
	if (s.size() != digits)
		return false;
	unsigned long v = 0;
	for (char c : s) {
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		v = v * 16 + d;
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

void pci_dev_release(struct device *dev)
{
	delete container_of(dev, struct pci_dev, dev);
}

} // namespace

int uvfio_parse_bdf(const char *text, std::string *canonical, u16 *domain,
		    u8 *bus_nr, u8 *devfn)
{
	std::string s(text ? text : "");
	unsigned long dom = 0, b, d, f;

	/* "DDDD:BB:DD.F" or "BB:DD.F" (domain 0). */
	size_t dot = s.rfind('.');
	if (dot == std::string::npos)
		return -EINVAL;
	std::string head = s.substr(0, dot), fn = s.substr(dot + 1);
	std::vector<std::string> parts;
	size_t start = 0;
	for (;;) {
		size_t colon = head.find(':', start);
		parts.push_back(head.substr(start, colon - start));
		if (colon == std::string::npos)
			break;
		start = colon + 1;
	}
	if (parts.size() == 3) {
		if (!parse_hex(parts[0], 4, 0xffff, &dom))
			return -EINVAL;
		parts.erase(parts.begin());
	}
	if (parts.size() != 2 || !parse_hex(parts[0], 2, 0xff, &b) ||
	    !parse_hex(parts[1], 2, 0x1f, &d) || !parse_hex(fn, 1, 7, &f))
		return -EINVAL;

	char buf[16];
	std::snprintf(buf, sizeof(buf), "%04lx:%02lx:%02lx.%lx", dom, b, d, f);
	if (canonical)
		*canonical = buf;
	if (domain)
		*domain = static_cast<u16>(dom);
	if (bus_nr)
		*bus_nr = static_cast<u8>(b);
	if (devfn)
		*devfn = static_cast<u8>(PCI_DEVFN(d, f));
	return 0;
}

/* -------- drivers -------- */

int pci_register_driver(const struct pci_driver *drv)
{
	if (!drv || !drv->name || !drv->spec_name || !drv->probe ||
	    !drv->remove) {
		pr_err("pci_register_driver: incomplete driver %s",
		       drv && drv->name ? drv->name : "(unnamed)");
		return -EINVAL;
	}
	pci_bus &b = bus();
	std::lock_guard<std::mutex> l(b.lock);
	if (!b.drivers.emplace(drv->spec_name, drv).second) {
		pr_err("driver %s: spec name '%s' already registered",
		       drv->name, drv->spec_name);
		return -EEXIST;
	}
	return 0;
}

void pci_unregister_driver(const struct pci_driver *drv)
{
	pci_bus &b = bus();
	std::lock_guard<std::mutex> l(b.lock);
	auto it = b.drivers.find(drv->spec_name);
	if (it != b.drivers.end() && it->second == drv)
		b.drivers.erase(it);
}

std::vector<const struct pci_driver *> uvfio_bus_drivers()
{
	pci_bus &b = bus();
	std::lock_guard<std::mutex> l(b.lock);
	std::vector<const struct pci_driver *> out;
	for (auto &[name, drv] : b.drivers)
		out.push_back(drv);
	return out;
}

/* -------- specs -------- */

static void spec_error(const std::string &spec, const std::string &what)
{
	uvfio_printk(LOGLEVEL_ERR, "spec \"%s\": %s", spec.c_str(),
		     what.c_str());
}

const char *uvfio_spec_get(const struct uvfio_spec *spec, const char *key)
{
	auto it = spec->index.find(std::string_view(key));
	return it == spec->index.end() ? nullptr
				       : spec->keys[it->second].second.c_str();
}

namespace {

int digit_value(char c, unsigned int base)
{
	int d = -1;
	if (c >= '0' && c <= '9')
		d = c - '0';
	else if (base == 16 && c >= 'a' && c <= 'f')
		d = c - 'a' + 10;
	else if (base == 16 && c >= 'A' && c <= 'F')
		d = c - 'A' + 10;
	return d;
}

/*
 * The binary factor a size suffix names, or 0 if s is not one: nothing,
 * B, or K, M, G, T alone or followed by B or iB; either case.
 */
u64 size_suffix(const char *s)
{
	unsigned int shift;
	switch (*s) {
	case '\0':
		return 1;
	case 'b': case 'B':
		return s[1] ? 0 : 1;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	default:
		return 0;
	}
	s++;
	if (*s == 'i' || *s == 'I')
		s++;
	else if (!*s)
		return 1ULL << shift;
	if ((*s == 'b' || *s == 'B') && !s[1])
		return 1ULL << shift;
	return 0;
}

} // namespace

int uvfio_parse_u64(const char *text, bool sized, u64 *out)
{
	/* Decimal, or hex with 0x; no sign, no space, no octal surprise. */
	bool hex = text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
	unsigned int base = hex ? 16 : 10;
	const char *p = hex ? text + 2 : text;
	const char *digits = p;
	bool over = false;
	u64 n = 0;
	int d;

	for (; (d = digit_value(*p, base)) >= 0; p++) {
		if (n > (U64_MAX - d) / base)
			over = true;
		n = n * base + d;
	}
	if (p == digits)
		return -EINVAL;
	u64 mult = sized ? size_suffix(p) : !*p;
	if (!mult)
		return -EINVAL;
	if (over || n > U64_MAX / mult)
		return -ERANGE;
	*out = n * mult;
	return 0;
}

static int spec_parse_number(const struct uvfio_spec *spec, const char *key,
			     bool sized, u64 def, u64 min, u64 max, u64 *out)
{
	const char *v = uvfio_spec_get(spec, key);
	if (!v) {
		*out = def;
		return 0;
	}
	u64 val = 0;
	bool bad = uvfio_parse_u64(v, sized, &val) != 0;
	if (bad || val < min || val > max) {
		spec_error(spec->text,
			   std::string(key) + "=" + v + ": " +
				   (bad ? (sized ? "not a size (e.g. 64M)"
						 : "not a number")
					: "out of range [" + std::to_string(min) +
						  ", " + std::to_string(max) +
						  "]"));
		return -EINVAL;
	}
	*out = val;
	return 0;
}

int uvfio_spec_get_size(const struct uvfio_spec *spec, const char *key,
			u64 def, u64 min, u64 max, u64 *out)
{
	return spec_parse_number(spec, key, true, def, min, max, out);
}

int uvfio_spec_get_u64(const struct uvfio_spec *spec, const char *key,
		       u64 def, u64 min, u64 max, u64 *out)
{
	return spec_parse_number(spec, key, false, def, min, max, out);
}

int uvfio_spec_get_flags(const struct uvfio_spec *spec, const char *key,
			 const char *const *names, const u32 *values, u32 def,
			 u32 *out)
{
	const char *v = uvfio_spec_get(spec, key);
	if (!v) {
		*out = def;
		return 0;
	}
	std::string s(v);
	u32 flags = 0;
	size_t start = 0;
	for (;;) {
		size_t sep = s.find_first_of("|+", start);
		std::string word = s.substr(start, sep - start);
		bool found = false;
		for (size_t i = 0; names[i]; i++) {
			if (word == names[i]) {
				flags |= values[i];
				found = true;
				break;
			}
		}
		if (!found) {
			std::string known;
			for (size_t i = 0; names[i]; i++)
				known += std::string(i ? ", " : "") + names[i];
			spec_error(spec->text, std::string(key) + "=" + v +
						       ": unknown flag '" + word +
						       "' (known: " + known + ")");
			return -EINVAL;
		}
		if (sep == std::string::npos)
			break;
		start = sep + 1;
	}
	*out = flags;
	return 0;
}

/* Split and check a spec's syntax; the driver's keys are checked later. */
static int spec_parse(const char *text, struct uvfio_spec *spec)
{
	spec->text = text;
	std::vector<std::string> tokens;
	size_t start = 0;
	for (;;) {
		size_t comma = spec->text.find(',', start);
		tokens.push_back(spec->text.substr(start, comma - start));
		if (comma == std::string::npos)
			break;
		start = comma + 1;
	}
	spec->driver = tokens[0];
	if (spec->driver.empty() ||
	    spec->driver.find('=') != std::string::npos) {
		spec_error(spec->text, "must start with a driver name "
				       "(\"DRIVER,bdf=DDDD:BB:DD.F[,key=value...]\")");
		return -EINVAL;
	}
	for (size_t i = 1; i < tokens.size(); i++) {
		const std::string &t = tokens[i];
		size_t eq = t.find('=');
		if (eq == std::string::npos || eq == 0 || eq + 1 == t.size()) {
			spec_error(spec->text, "'" + t + "' is not key=value");
			return -EINVAL;
		}
		std::string key = t.substr(0, eq), value = t.substr(eq + 1);
		if (!spec->index.emplace(key, spec->keys.size()).second) {
			spec_error(spec->text, "key '" + key + "' given twice");
			return -EINVAL;
		}
		if (key == "bdf") {
			if (uvfio_parse_bdf(value.c_str(), &spec->bdf, nullptr,
					    nullptr, nullptr)) {
				spec_error(spec->text,
					   "malformed BDF '" + value +
						   "' (want DDDD:BB:DD.F, "
						   "device <= 1f, function <= 7)");
				return -EINVAL;
			}
		}
		spec->keys.emplace_back(key, value);
	}
	if (spec->bdf.empty()) {
		spec_error(spec->text, "no bdf= key");
		return -EINVAL;
	}
	return 0;
}

/* -------- add and remove -------- */

int uvfio_bus_add(const char *text)
{
	struct uvfio_spec spec;
	int ret;

	if (!text)
		return -EFAULT;
	try {
		ret = spec_parse(text, &spec);
	} catch (...) {
		return -ENOMEM;
	}
	if (ret)
		return ret;

	pci_bus &b = bus();
	std::lock_guard<std::mutex> probe(b.probe_lock);
	const struct pci_driver *drv;
	bool have;
	{
		std::lock_guard<std::mutex> l(b.lock);
		have = b.drivers.count(spec.driver);
	}
	/* Not built in: a plugin, loaded without the bus lock (its
	 * constructor registers through it). */
	int plugin = have ? 0 : uvfio_plugin_load(spec.driver);
	{
		std::lock_guard<std::mutex> l(b.lock);
		auto it = b.drivers.find(spec.driver);
		if (it == b.drivers.end()) {
			std::string known;
			for (auto &[name, d] : b.drivers)
				known += (known.empty() ? "" : ", ") + name;
			std::string why = plugin == -ENOENT ?
				"unknown driver '" + spec.driver + "'" :
				plugin ? "driver plugin '" + spec.driver +
						 ".so' failed to load" :
				"driver plugin '" + spec.driver +
					".so' did not register '" +
					spec.driver + "'";
			spec_error(spec.text, why + " (known: " + known + ")");
			return -ENOENT;
		}
		drv = it->second;
		if (b.devices.count(spec.bdf)) {
			spec_error(spec.text, "BDF " + spec.bdf +
						      " is already in use");
			return -EINVAL;
		}
	}
	for (auto &[key, value] : spec.keys) {
		bool known = key == "bdf" || key == "mig_v1";
		for (size_t i = 0; !known && drv->spec_keys && drv->spec_keys[i];
		     i++)
			known = key == drv->spec_keys[i];
		if (!known) {
			std::string keys = "bdf, mig_v1";
			for (size_t i = 0; drv->spec_keys && drv->spec_keys[i]; i++)
				keys += std::string(", ") + drv->spec_keys[i];
			spec_error(spec.text, "unknown key '" + key + "' for " +
						      spec.driver + " (known: " +
						      keys + ")");
			return -EINVAL;
		}
		/* Every driver's: pci_core reads it (the v1 migration region). */
		if (key == "mig_v1" && value != "on" && value != "off") {
			spec_error(spec.text, "mig_v1=" + value +
						      ": want on or off");
			return -EINVAL;
		}
	}

	struct pci_dev *pdev = new (std::nothrow) pci_dev;
	if (!pdev)
		return -ENOMEM;
	device_initialize(&pdev->dev);
	pdev->dev.release = pci_dev_release;
	uvfio_parse_bdf(spec.bdf.c_str(), &pdev->dev.name, &pdev->domain,
			&pdev->bus, &pdev->devfn);
	pdev->driver = drv;
	pdev->spec = &spec;
	unsigned long errs_before = uvfio_log_err_lines();
	ret = drv->probe(pdev, &spec);
	pdev->spec = nullptr;
	if (ret) {
		/* One line per failure: the driver's own, if it said why. */
		if (uvfio_log_err_lines() == errs_before)
			spec_error(spec.text,
				   std::string(drv->name) + " probe failed: " +
					   strerror(-ret));
		put_device(&pdev->dev);
		return ret;
	}
	{
		std::lock_guard<std::mutex> l(b.lock);
		b.devices.emplace(spec.bdf, pdev);
	}
	return 0;
}

int uvfio_bus_remove(const char *bdf)
{
	std::string name;
	if (!bdf)
		return -EFAULT;
	if (uvfio_parse_bdf(bdf, &name, nullptr, nullptr, nullptr)) {
		uvfio_printk(LOGLEVEL_ERR, "remove: malformed BDF '%s'", bdf);
		return -EINVAL;
	}

	pci_bus &b = bus();
	struct pci_dev *pdev;
	{
		/* Taken off the bus first: a second remove finds nothing. */
		std::lock_guard<std::mutex> l(b.lock);
		auto it = b.devices.find(name);
		if (it == b.devices.end())
			return -ENOENT;
		pdev = it->second;
		b.devices.erase(it);
	}
	/* May wait for users to close the device (see vfio_unregister_group_dev). */
	pdev->driver->remove(pdev);
	put_device(&pdev->dev);
	return 0;
}

std::vector<std::string> uvfio_bus_devices()
{
	pci_bus &b = bus();
	std::lock_guard<std::mutex> l(b.lock);
	std::vector<std::string> out;
	for (auto &[name, pdev] : b.devices)
		out.push_back(name);
	return out;
}
