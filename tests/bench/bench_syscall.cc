// SPDX-License-Identifier: GPL-2.0-only
/*
 * Cost of the syscall surface: one ioctl, one small region access, one
 * VFIO_DEVICE_FEATURE round trip. These bound how fast a userspace driver
 * loop over uvfio can go; later benchmarks (streams, dirty tracking) sit on
 * top of them.
 */
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>

#include <uvfio/uvfio.h>

namespace {

class Device
{
public:
	Device()
	{
		uvfio_set_log_level(UVFIO_LOG_ERR);
		if (uvfio_sim_add("testdev,bdf=0000:00:0b.0,mig=stop_copy") == 0)
			fd_ = uvfio_open("0000:00:0b.0");
	}
	~Device()
	{
		if (fd_ >= 0)
			uvfio_close(fd_);
		uvfio_sim_remove("0000:00:0b.0");
	}
	int fd() const { return fd_; }

private:
	int fd_ = -1;
};

Device &device()
{
	static Device d;
	return d;
}

void BM_ioctl_get_info(benchmark::State &state)
{
	int fd = device().fd();
	struct vfio_device_info info;
	for (auto _ : state) {
		std::memset(&info, 0, sizeof(info));
		info.argsz = sizeof(info);
		if (uvfio_ioctl(fd, VFIO_DEVICE_GET_INFO, &info)) {
			state.SkipWithError("GET_INFO failed");
			break;
		}
		benchmark::DoNotOptimize(info);
	}
}
BENCHMARK(BM_ioctl_get_info);

void BM_pread_bar0_u32(benchmark::State &state)
{
	int fd = device().fd();
	struct vfio_region_info reg = {};
	reg.argsz = sizeof(reg);
	reg.index = VFIO_PCI_BAR0_REGION_INDEX;
	if (uvfio_ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &reg)) {
		state.SkipWithError("GET_REGION_INFO failed");
		return;
	}
	uint32_t v;
	for (auto _ : state) {
		if (uvfio_pread(fd, &v, sizeof(v),
				static_cast<off_t>(reg.offset)) != sizeof(v)) {
			state.SkipWithError("pread failed");
			break;
		}
		benchmark::DoNotOptimize(v);
	}
}
BENCHMARK(BM_pread_bar0_u32);

void BM_feature_mig_state_get(benchmark::State &state)
{
	int fd = device().fd();
	alignas(8) char buf[sizeof(struct vfio_device_feature) +
			    sizeof(struct vfio_device_feature_mig_state)];
	auto *f = reinterpret_cast<struct vfio_device_feature *>(buf);
	for (auto _ : state) {
		f->argsz = sizeof(buf);
		f->flags = VFIO_DEVICE_FEATURE_GET |
			   VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE;
		if (uvfio_ioctl(fd, VFIO_DEVICE_FEATURE, f)) {
			state.SkipWithError("MIG_DEVICE_STATE GET failed");
			break;
		}
		benchmark::DoNotOptimize(buf);
	}
}
BENCHMARK(BM_feature_mig_state_get);

} // namespace

BENCHMARK_MAIN();
