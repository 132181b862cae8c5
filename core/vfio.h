/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Core-private declarations shared by the files of core/ (the counterpart of
 * drivers/vfio/vfio.h). Nothing here is for drivers or userspace.
 */
#ifndef UVFIO_CORE_VFIO_H
#define UVFIO_CORE_VFIO_H

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include <uvfio/linux/vfio.h>

struct vfio_mig_stream;
struct vfio_mig_v1;
struct vfio_group;

/* Core state hung off each vfio_device. */
struct vfio_device_private {
	enum vfio_group_type type = VFIO_IOMMU;
	bool registered = false;
	/*
	 * Serializes MIG_DEVICE_STATE SET, VFIO_DEVICE_RESET and the last
	 * close against each other; taken before any driver lock.
	 */
	std::mutex mig_lock;
	/* The live data stream, if any (protected by mig_lock). */
	std::shared_ptr<vfio_mig_stream> mig_stream;
	/*
	 * A "mig.error.*" fault fired while the driver asked for its next
	 * arc: the device is broken, GET reports ERROR and SET is refused
	 * until a reset or the last close. Set from the driver's
	 * migration_set_state (under mig_lock); GET reads it without.
	 */
	std::atomic<bool> mig_broken{false};
	/*
	 * The v1 migration region (vfio_migration_v1.cc), set before
	 * registration; its session is protected by mig_lock.
	 */
	std::shared_ptr<vfio_mig_v1> mig_v1;
	/* uvfio_set_state_digest()'s hook, or NULL. */
	int (*state_digest)(struct vfio_device *device, u64 *out) = nullptr;
	/* The device's IOMMU group, from registration to unregistration. */
	std::shared_ptr<vfio_group> group;
};

/* What a device fd's struct file points to. */
struct vfio_device_file {
	struct vfio_device *device;
	/* The group file it was opened through (a reference), or NULL. */
	struct file *group_file;
};

/* -------- vfio_main.cc -------- */

/* Take a user reference on a registered device found by parent name. */
struct vfio_device *vfio_device_get_registered(const char *name);
void vfio_device_put_registration(struct vfio_device *device);

/* First open calls open_device (undone on failure); last close close_device. */
int vfio_device_open(struct vfio_device *device);
void vfio_device_close(struct vfio_device *device);

extern const struct file_operations vfio_device_fops;

/*
 * A device fd for device, whose registration reference the caller passes
 * on (it is dropped on failure). Opened through a group, the fd holds a
 * reference to group_file, as in the kernel. Returns the fd or -errno.
 */
int vfio_device_fd_open(struct vfio_device *device, struct file *group_file);

/* -------- vfio_group.cc: groups and containers -------- */

/* Registration gives a device its group; unregistration takes it. */
int vfio_group_register(struct vfio_device *device);
void vfio_group_unregister(struct vfio_device *device);

/* The group number of the registered device named name, or -ENOENT. */
int vfio_group_id_of(const char *name);

/* Open "/dev/vfio/N" (number is "N"): a new fd or -errno. */
int vfio_group_open(const char *number);

/* A device fd opened through / closed from the group behind group_file. */
void vfio_group_device_opened(struct file *group_file);
void vfio_group_device_closed(struct file *group_file);

/* -------- file.cc: the fd table -------- */

/*
 * Give userspace a real fd for filp: real_fd (owned from now on) is recorded
 * as standing for filp, and the table takes over the caller's reference.
 * Returns real_fd, or -errno (real_fd is closed, the reference dropped).
 */
int uvfio_fd_install(struct file *filp, int real_fd);

/* The file behind fd with a new reference (fput() it), or NULL. */
struct file *uvfio_fget(int fd);

/*
 * Forget fd: close the real fd and drop the table's reference. -EBADF when fd
 * is not a uvfio fd.
 */
int uvfio_fd_close(int fd);

/*
 * Whether fd is in the table, without taking its lock (safe from inside any
 * core call, and cheap enough for an interposer's every read(2)).
 */
bool uvfio_fd_owned(int fd);

/*
 * dup(2) for a uvfio fd: a new real fd for oldfd's file, in the table with
 * its own reference. newfd >= 0: dup3() onto it (a uvfio file there is
 * released, EINVAL when newfd == oldfd); otherwise the lowest free number
 * >= minfd (fcntl F_DUPFD). flags: O_CLOEXEC or 0. The fd, or -errno.
 */
int uvfio_fd_dup(int oldfd, int newfd, int minfd, int flags);

/* Number of fds in the table (tests check for leaks). */
size_t uvfio_fd_count(void);

/* Open the IOMMU container: a new fd or -errno. */
int vfio_container_open(void);

/* -------- uaccess.cc -------- */

/*
 * Where copies to and from a kernel buffer may really go: copy_out gets
 * copy_to_user()'s bytes with their offset in the buffer, copy_in fills
 * copy_from_user()'s destination; each returns true if it did the copy
 * (false: memcpy with the buffer, as usual).
 */
class uaccess_sink
{
public:
	/* stable: from uvfio_copy_to_user_stable(), see uaccess.h. */
	virtual bool copy_out(size_t, const void *, size_t, bool) { return false; }
	virtual bool copy_in(size_t, void *, size_t) { return false; }

protected:
	~uaccess_sink() = default;
};

/*
 * While alive, copy_{from,to}_user on this thread treat [buf, buf + len) as
 * valid user memory and copy it with memcpy: the core passes its own buffers
 * to drivers (the data-fd pump, PRECOPY_INFO) and needs no page check there.
 * With a sink, copies with the buffer ask the sink first.
 */
class uaccess_kernel_buffer
{
public:
	uaccess_kernel_buffer(const void *buf, size_t len,
			      uaccess_sink *sink = nullptr);
	~uaccess_kernel_buffer();
	uaccess_kernel_buffer(const uaccess_kernel_buffer &) = delete;
	uaccess_kernel_buffer &operator=(const uaccess_kernel_buffer &) = delete;

private:
	const char *lo_;
	const char *hi_;
	uaccess_sink *sink_;
};

/* -------- log.cc -------- */

bool uvfio_log_enabled(int level);
/* How many error lines the calling thread has logged so far. */
unsigned long uvfio_log_err_lines(void);
void uvfio_log_line(int level, const std::string &line);

#endif /* UVFIO_CORE_VFIO_H */
