/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/tools/migration_v1.h> - a client of the v1 migration uAPI: the
 * migration region (VFIO_REGION_TYPE_MIGRATION_DEPRECATED, subtype 1),
 * with struct vfio_device_migration_info at its offset 0 and a data
 * window after it, and the optional NDMA bit of the RFC that followed.
 * Through a Transport only, so it drives a simulated device (uvfio_*), a
 * kernel device by its path, and a simulated one under uvfio-run alike.
 *
 * The sequences are the KABI's. Saving (pre-copy or stop-and-copy):
 * read pending_bytes; while it is not 0, read data_offset (which queues
 * a chunk), data_size, the data_size bytes at data_offset, and
 * pending_bytes again (which says the chunk was consumed). Resuming: per
 * chunk, read data_offset, write the data there (at most the window),
 * write data_size. Fields are accessed at their native width;
 * device_state is written read-modify-write, keeping the reserved bits.
 *
 * States are named with the v2 values (VFIO_DEVICE_STATE_*), mapped onto
 * v1 bits: stop 0, running RUNNING, stop_copy SAVING, pre_copy
 * RUNNING|SAVING, resuming RESUMING, running_p2p RUNNING|NDMA and
 * pre_copy_p2p RUNNING|SAVING|NDMA (only where the region has the NDMA
 * capability), error SAVING|RESUMING (never written).
 */
#ifndef UVFIO_TOOLS_MIGRATION_V1_H
#define UVFIO_TOOLS_MIGRATION_V1_H

#include <linux/types.h>

#include <cstddef>
#include <string>
#include <vector>

#include <uvfio/tools/migration.h>
#include <uvfio/tools/transport.h>
#include <uvfio/uapi/vfio.h>

namespace uvfio::tools {

/* The v1 names, from <uvfio/uapi/vfio.h> (NDMA and its capability are
 * uvfio's, after the RFC), shorter. */
constexpr __u32 V1_REGION_TYPE = VFIO_REGION_TYPE_MIGRATION_DEPRECATED;
constexpr __u32 V1_REGION_SUBTYPE = VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED;
constexpr __u32 V1_STOP = VFIO_DEVICE_STATE_V1_STOP;
constexpr __u32 V1_RUNNING = VFIO_DEVICE_STATE_V1_RUNNING;
constexpr __u32 V1_SAVING = VFIO_DEVICE_STATE_V1_SAVING;
constexpr __u32 V1_RESUMING = VFIO_DEVICE_STATE_V1_RESUMING;
constexpr __u32 V1_NDMA = VFIO_DEVICE_STATE_V1_NDMA;
constexpr __u32 V1_STATE_MASK = VFIO_DEVICE_STATE_MASK;
constexpr __u32 V1_ERROR = V1_SAVING | V1_RESUMING;
constexpr __u16 V1_CAP_NDMA = VFIO_REGION_INFO_CAP_MIG_NDMA;

/* Where the fields of struct vfio_device_migration_info are. */
struct V1Info {
	using info = struct vfio_device_migration_info;
	static constexpr __u64 DEVICE_STATE = offsetof(info, device_state);
	static constexpr __u64 PENDING_BYTES = offsetof(info, pending_bytes);
	static constexpr __u64 DATA_OFFSET = offsetof(info, data_offset);
	static constexpr __u64 DATA_SIZE = offsetof(info, data_size);
	static constexpr __u64 SIZE = sizeof(info);
};

/* v2 state -> v1 bits: 0, -EINVAL (error, or not a state) or
 * -EOPNOTSUPP (a P2P state without NDMA). */
int v1_bits_of_state(__u32 state, bool ndma, __u32 *bits);
/* v1 bits -> v2 state; false for a combination the KABI calls invalid
 * (RESUMING with RUNNING). NDMA without RUNNING is superfluous (the RFC):
 * the state without it. Reserved bits are ignored. */
bool v1_state_of_bits(__u32 bits, __u32 *state);
/* "RUNNING|SAVING", "STOP", "SAVING|RESUMING", with "|0x..." for the
 * reserved bits set. */
std::string v1_bits_text(__u32 bits);

/* What GET_REGION_INFO says of the migration region. */
struct V1Region {
	__u32 index = 0;
	__u64 offset = 0;	/* in the device fd */
	__u64 size = 0;
	__u32 flags = 0;	/* VFIO_REGION_INFO_FLAG_* */
	bool ndma = false;	/* the NDMA capability is on the region */
	/* The mmap-able areas (sparse mmap capability, or all of it). */
	std::vector<std::pair<__u64, __u64>> mmap_areas;	/* offset, size */
};

/*
 * Find the migration region: every region index GET_DEVICE_INFO counts,
 * GET_REGION_INFO grown to the argsz it asks for, the capability chain
 * walked for the type (3, subtype 1), sparse mmap and NDMA capabilities.
 * 0; -ENODEV with *why if there is none; -EPROTO with *why if an answer
 * breaks the uAPI (a chain outside the buffer, a region too small).
 */
int find_v1_region(Transport &t, int fd, V1Region *r, std::string *why);

/* The region of one device: its fields, its state and its data window. */
class DeviceV1
{
public:
	DeviceV1(Transport &t, int fd) : t_(t), fd_(fd) {}
	~DeviceV1();
	DeviceV1(const DeviceV1 &) = delete;
	DeviceV1 &operator=(const DeviceV1 &) = delete;

	/*
	 * Find the region; with use_mmap, map the window's mmap-able areas
	 * (one that does not map is read and written with pread/pwrite,
	 * which the KABI always allows). 0 or -errno with *why.
	 */
	int open(std::string *why, bool use_mmap = true);
	const V1Region &region() const { return r_; }
	/* Bytes of the window mapped (0: all pread/pwrite). */
	__u64 mapped_bytes() const;

	/* device_state as read, reserved bits included. */
	int read_state(__u32 *bits);
	/*
	 * Write the state bits (RUNNING, SAVING, RESUMING, and NDMA where
	 * the region has it) read-modify-write: every other bit as read.
	 * On failure the KABI says to read device_state again.
	 */
	int write_state(__u32 bits);
	int pending_bytes(__u64 *v);
	int data_offset(__u64 *v);
	int data_size(__u64 *v);
	int set_data_size(__u64 v);
	/* The window from region offset off: usable bytes (to the end of
	 * its mapped area, or of the region). */
	__u64 window_at(__u64 off) const;
	/* n bytes at region offset off, by mmap where mapped, else pread. */
	int read_data(__u64 off, void *buf, size_t n);
	int write_data(__u64 off, const void *buf, size_t n);

private:
	int read_field(__u64 off, void *v, size_t width);
	int write_field(__u64 off, const void *v, size_t width);
	/* The mapping holding [off, off + n) of the region, or nullptr. */
	char *mapped(__u64 off, size_t n) const;

	Transport &t_;
	int fd_;
	V1Region r_;
	struct Map {
		__u64 off, size;
		char *addr;
	};
	std::vector<Map> maps_;
};

/* A device's migration through its v1 region (see Migration). */
class MigrationV1 final : public Migration
{
public:
	explicit MigrationV1(Device &dev)
		: dev_(dev), v1_(dev.transport(), dev.fd()), save_(*this),
		  resume_(*this)
	{
	}

	/* Find the region (and map its window). 0 or -errno with *why. */
	int open(std::string *why, bool use_mmap = true)
	{
		return v1_.open(why, use_mmap);
	}
	DeviceV1 &region() { return v1_; }

	Protocol protocol() const override { return Protocol::V1; }
	Device &device() override { return dev_; }
	/* -EPROTO for bits the KABI calls invalid (read_state has them). */
	int get_state(__u32 *state) override;
	/* -EINVAL for error; -EOPNOTSUPP for P2P without NDMA. */
	int set_state(__u32 state, Endpoint *stream = nullptr) override;
	void close_stream(Endpoint *stream) override { *stream = {}; }
	int precopy_info(const Endpoint &stream, __u64 *initial,
			 __u64 *dirty) override;
	int reset() override;
	std::string stream_error() const override { return error_; }

private:
	/* The saving sequence, one chunk at a time, as a stream. */
	class Saver final : public StreamIo
	{
	public:
		explicit Saver(MigrationV1 &m) : m_(m) {}
		void start(bool precopy)
		{
			precopy_ = precopy;
			pos_ = left_ = 0;
		}
		void set_precopy(bool p) { precopy_ = p; }
		__u64 left() const { return left_; }
		ssize_t read(void *buf, size_t count) override;
		ssize_t write(const void *, size_t) override { return -EBADF; }

	private:
		MigrationV1 &m_;
		bool precopy_ = false;
		__u64 pos_ = 0, left_ = 0;	/* the chunk being read */
	};
	/* The resuming sequence: each write one chunk of at most the window. */
	class Resumer final : public StreamIo
	{
	public:
		explicit Resumer(MigrationV1 &m) : m_(m) {}
		ssize_t read(void *, size_t) override { return -EBADF; }
		ssize_t write(const void *buf, size_t count) override;

	private:
		MigrationV1 &m_;
	};

	int protocol_error(const std::string &what);

	Device &dev_;
	DeviceV1 v1_;
	Saver save_;
	Resumer resume_;
	std::string error_;
};

} // namespace uvfio::tools

#endif /* UVFIO_TOOLS_MIGRATION_V1_H */
