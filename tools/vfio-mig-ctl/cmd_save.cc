// SPDX-License-Identifier: GPL-2.0-only
/*
 * save: a device's state into a file or stdout.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>

#include "commands.h"
#include "common.h"
#include "stream.h"

namespace uvfio::mig_ctl {

namespace {

/*
 * save -o FILE: a regular file (or a name not yet taken) is written as a
 * temporary file in its directory and renamed over it once the stream is
 * whole and on disk, so a failed save never destroys the file it would
 * replace, and a reader never sees half of a new one. Anything else (a
 * FIFO, a character device, stdout) is written as it is.
 */
struct SaveOutput {
	std::string path;	/* what the user named */
	std::string target;	/* what gets replaced (symlinks followed) */
	std::string tmp;	/* the temporary file, "" if none */
	int fd = -1;

	~SaveOutput() { abort(); }

	/* 0 or -errno with *why. */
	int open(const std::string &p, std::string *why)
	{
		path = target = p;
		if (p == "-") {
			fd = STDOUT_FILENO;
			return 0;
		}
		struct stat st;
		bool exists = !stat(p.c_str(), &st);
		if (exists && !S_ISREG(st.st_mode)) {
			fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
			if (fd < 0)
				return say(why, -errno);
			return 0;
		}
		/* Replace what a symlink points to, not the link. */
		if (exists) {
			char *real = realpath(p.c_str(), nullptr);
			if (real) {
				target = real;
				free(real);
			}
		}
		size_t slash = target.rfind('/');
		std::string dir = slash == std::string::npos ? "" :
				  target.substr(0, slash + 1);
		std::string base = slash == std::string::npos ? target :
				   target.substr(slash + 1);
		/*
		 * mkostemp()'s name, but registered for SIGINT/SIGTERM's
		 * cleanup before it exists: a signal between creating and
		 * registering it would leave it behind.
		 */
		std::random_device rd;
		static const char chars[] = "abcdefghijklmnopqrstuvwxyz"
					    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
		int err = -EEXIST;
		for (int tries = 0; fd < 0 && err == -EEXIST && tries < 100;
		     tries++) {
			std::string suffix(6, ' ');
			for (char &c : suffix)
				c = chars[rd() % (sizeof(chars) - 1)];
			tmp = dir + "." + base + "." + suffix;
			set_cleanup_path(tmp);
			fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL |
					   O_CLOEXEC, 0600);
			err = fd < 0 ? -errno : 0;
		}
		if (fd < 0) {
			set_cleanup_path("");
			tmp.clear();
			return say(why, err);
		}
		/* As open(O_CREAT, 0644) would have, or the replaced file's. */
		mode_t mask = umask(0);
		umask(mask);
		if (fchmod(fd, exists ? st.st_mode & 07777 : 0644 & ~mask))
			return say(why, -errno);
		return 0;
	}

	/* The stream is whole: make it the file. 0 or -errno with *why. */
	int commit(std::string *why)
	{
		if (tmp.empty()) {
			int ret = 0;
			if (fd != STDOUT_FILENO && fd >= 0 && close(fd))
				ret = -errno;
			fd = -1;
			if (ret)
				*why = "writing " + path + ": " + strerror(-ret);
			return ret;
		}
		/* On disk before it replaces the old one: a crash leaves
		 * either file, never an empty new one. */
		if (fsync(fd) || close(fd)) {
			fd = -1;
			*why = "writing " + path + ": " + strerror(errno);
			return -errno;
		}
		fd = -1;
		if (rename(tmp.c_str(), target.c_str())) {
			*why = "cannot replace " + path + ": " + strerror(errno);
			return -errno;
		}
		tmp.clear();
		set_cleanup_path("");
		/* And the rename itself (best effort: the data is safe). */
		size_t slash = target.rfind('/');
		std::string dir = slash == std::string::npos ? "." :
				  slash == 0 ? "/" : target.substr(0, slash);
		int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		return 0;
	}

	/* Failed: drop the temporary file; what it would replace stays. */
	void abort()
	{
		if (fd >= 0 && fd != STDOUT_FILENO)
			close(fd);
		fd = -1;
		if (!tmp.empty()) {
			unlink(tmp.c_str());
			set_cleanup_path("");
		}
		tmp.clear();
	}

private:
	int say(std::string *why, int err)
	{
		*why = "cannot create " + path + ": " + strerror(-err);
		return err;
	}
};

/*
 * save: the stream goes out as it is read (memory does not grow with the
 * device). A file is replaced only by a whole stream (SaveOutput); on
 * stdout a failed save leaves a truncated stream (DigestSink).
 */
int cmd_save(const std::string &spec, const std::string &out, bool stop,
	     bool force, bool as_json)
{
	/* With the stream on stdout, reports (JSON too) go to stderr. */
	if (out == "-")
		set_json_stream(stderr);
	/* Binary on a terminal is a mistake (a forgotten "| load"), as
	 * gzip and dd's users know: refuse it unless asked. */
	if (out == "-" && !force && isatty(STDOUT_FILENO))
		return fail(EXIT_USAGE, "save -o -: standard output is a "
			    "terminal; the stream is binary (redirect it, or "
			    "--force)");
	CmdDevice d;
	if (int rc = d.open(spec))
		return rc;
	if (int rc = d.open_mig("save"))
		return rc;
	std::string why;
	__u64 estimate = 0;
	if (protocol_opt == Protocol::V2)
		d.dev->data_size(&estimate);

	/* Before the device is touched: an unwritable output costs nothing. */
	SaveOutput of;
	if (of.open(out, &why))
		return fail(EXIT_FAIL, why);
	auto t0 = std::chrono::steady_clock::now();
	__u64 len = 0, digest = 0;
	int out_err, ret;
	{
		ProgressBar bar("saving", estimate);
		ret = save_streaming(*d.mig, of.fd, stop, &digest, &len,
				     &out_err, &why, bar.fn());
	}
	if (out_err) {
		of.abort();
		return fail(EXIT_FAIL, "writing " + out + ": " +
					       strerror(-out_err));
	}
	if (ret) {
		of.abort();
		return fail(EXIT_FAIL, "save: " + why);
	}
	if (of.commit(&why))
		return fail(EXIT_FAIL, why);
	double s = std::chrono::duration<double>(std::chrono::steady_clock::now() -
						 t0).count();
	json j = d.report({{"protocol", protocol_name(protocol_opt)},
			   {"bytes", len}, {"seconds", s},
			   {"digest", hex64(digest)}});
	/* With the stream on stdout, the report goes to stderr. */
	FILE *rep = out == "-" ? stderr : stdout;
	if (as_json)
		emit_json(j, rep);
	else
		fmt::print(rep, "saved {} bytes from {}{} in {:.3f} s (digest "
			   "{})\n", len, d.label(), via(), s, hex64(digest));
	return 0;
}

} // namespace

Command add_save(CLI::App &app)
{
	struct Args {
		std::string spec, file;
		bool stop = false;
		bool force = false;
		bool as_json = false;
	};
	auto a = std::make_shared<Args>();
	auto *sub = app.add_subcommand("save", "save a device's state to a "
				       "file or stdout");
	sub->add_option("device", a->spec, kDeviceHelp)->required();
	sub->add_option("-o,--output", a->file, "file, or - for stdout")
		->required();
	sub->add_flag("--stop", a->stop, "leave the device stopped");
	sub->add_flag("--force", a->force, "write the stream to stdout even "
		      "if it is a terminal");
	sub->add_flag("--json", a->as_json, "JSON report (on stderr with -o -)");
	return {sub, true, [a] {
		return cmd_save(a->spec, a->file, a->stop, a->force,
				a->as_json);
	}};
}

} // namespace uvfio::mig_ctl
