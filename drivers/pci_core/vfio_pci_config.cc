// SPDX-License-Identifier: GPL-2.0-only
/*
 * Config-space virtualization, as vfio-pci does it: the user sees the
 * function's config space through per-byte permissions. Identification,
 * BARs, the interrupt line and pin, the capability pointers and the MSI-X
 * enable bits are emulated (vconfig); the command and status registers,
 * power-management control, PCIe device control/status and the data of
 * the vendor-specific capability are written through to the function;
 * everything else (bytes in no capability, capability IDs, read-only
 * fields) reads from the function and drops writes. Initiate FLR is
 * intercepted and becomes a function reset with the state saved and
 * restored around it.
 *
 * Deviation: vfio-pci also emulates the command register's memory, I/O
 * and INTx-disable bits while writing them through; here the function's
 * own register is the only copy.
 */
#include <algorithm>
#include <cstring>

#include "vfio_pci_priv.h"

namespace {

constexpr u32 ALL = 0xffffffffu;

/* Set the permission of len bytes at off (little-endian masks). */
void p_set(struct vfio_pci_core_device *vdev, u32 off, u32 len, u32 virt,
	   u32 write)
{
	for (u32 i = 0; i < len; i++) {
		u32 sh = 8 * (i % 4);
		vdev->perm_virt[off + i] = static_cast<u8>(virt >> sh);
		vdev->perm_write[off + i] = static_cast<u8>(write >> sh);
	}
}

void put32(u8 *a, u32 off, u32 v)
{
	std::memcpy(a + off, &v, 4);
}

u32 get32(const u8 *a, u32 off)
{
	u32 v;
	std::memcpy(&v, a + off, 4);
	return v;
}

/*
 * The BARs in vconfig answer the sizing protocol from the sizes pci_core
 * knows: address bits below the size read as zero, the type bits are
 * fixed. No expansion ROM: it reads 0.
 */
void vfio_bar_fixup(struct vfio_pci_core_device *vdev)
{
	for (int i = 0; i < PCI_STD_NUM_BARS; i++) {
		u32 off = SIM_PCI_BASE_ADDRESS_0 + 4 * i;
		const struct vfio_pci_bar *bar = &vdev->bars[i];
		if (i > 0 && vdev->bars[i - 1].is_64 && vdev->bars[i - 1].size)
			continue;	/* the upper half, done with the lower */
		if (!bar->size) {
			put32(vdev->vconfig, off, 0);
			continue;
		}
		u64 mask = ~(bar->size - 1);
		u32 flags = (bar->is_64 ? SIM_PCI_BAR_MEM_TYPE_64 : 0) |
			    (bar->prefetch ? SIM_PCI_BAR_MEM_PREFETCH : 0);
		u32 lo = get32(vdev->vconfig, off);
		put32(vdev->vconfig, off,
		      (lo & static_cast<u32>(mask) & ~0xfu) | flags);
		if (bar->is_64 && i + 1 < PCI_STD_NUM_BARS) {
			u32 hi = get32(vdev->vconfig, off + 4);
			put32(vdev->vconfig, off + 4,
			      hi & static_cast<u32>(mask >> 32));
		}
	}
	put32(vdev->vconfig, 0x30, 0);	/* PCI_ROM_ADDRESS */
}

void hw_write16(struct vfio_pci_core_device *vdev, u32 off, u16 v)
{
	sim_pci_config_write(&vdev->config, off, &v, 2);
}

} // namespace

void vfio_pci_init_perm_bits(struct vfio_pci_core_device *vdev)
{
	const struct sim_pci_config *c = &vdev->config;

	std::memset(vdev->perm_virt, 0, sizeof(vdev->perm_virt));
	std::memset(vdev->perm_write, 0, sizeof(vdev->perm_write));

	/* The standard header. */
	p_set(vdev, SIM_PCI_VENDOR_ID, 4, ALL, 0);
	p_set(vdev, SIM_PCI_COMMAND, 2, 0, ALL);
	p_set(vdev, SIM_PCI_STATUS, 2, 0, ALL);	/* W1C goes through */
	p_set(vdev, SIM_PCI_REVISION_ID, 4, ALL, 0);
	p_set(vdev, 0x0c, 2, 0, ALL);		/* cache line, latency */
	p_set(vdev, SIM_PCI_HEADER_TYPE, 2, ALL, 0);	/* and BIST */
	p_set(vdev, SIM_PCI_BASE_ADDRESS_0, 24, ALL, ALL);
	p_set(vdev, 0x28, 8, ALL, 0);		/* CardBus CIS, subsystem */
	p_set(vdev, 0x30, 4, ALL, ALL);		/* expansion ROM */
	p_set(vdev, SIM_PCI_CAPABILITY_LIST, 8, ALL, 0);
	p_set(vdev, SIM_PCI_INTERRUPT_LINE, 1, ALL, ALL);
	p_set(vdev, SIM_PCI_INTERRUPT_PIN, 3, ALL, 0);

	/* Every capability's ID and next pointer is emulated. */
	for (u8 cap : {c->pm_cap, c->msix_cap, c->exp_cap, c->vndr_cap})
		if (cap)
			p_set(vdev, cap, 2, ALL, 0);
	if (c->pm_cap)
		p_set(vdev, c->pm_cap + SIM_PCI_PM_CTRL, 2, 0, ALL);
	if (c->msix_cap) {
		/* The host owns MSI-X; the user's enable bits are emulated. */
		u32 bits = SIM_PCI_MSIX_FLAGS_ENABLE | SIM_PCI_MSIX_FLAGS_MASKALL;
		p_set(vdev, c->msix_cap + SIM_PCI_MSIX_FLAGS, 2, bits, bits);
	}
	if (c->exp_cap) {
		p_set(vdev, c->exp_cap + SIM_PCI_EXP_DEVCTL, 2,
		      SIM_PCI_EXP_DEVCTL_BCR_FLR, ALL);
		p_set(vdev, c->exp_cap + SIM_PCI_EXP_DEVSTA, 2, 0, ALL);
		p_set(vdev, c->exp_cap + 0x28, 2, 0, ALL);	/* DEVCTL2 */
	}
	if (c->vndr_cap)	/* device specific: written through */
		p_set(vdev, c->vndr_cap + 3, SIM_PCI_VNDR_CAP_LEN - 3, 0, ALL);
}

void vfio_config_init(struct vfio_pci_core_device *vdev)
{
	std::memcpy(vdev->vconfig, vdev->config.regs, sizeof(vdev->vconfig));
	vfio_bar_fixup(vdev);
}

void vfio_pci_config_read(struct vfio_pci_core_device *vdev, u32 off,
			  void *buf, size_t count)
{
	u8 *out = static_cast<u8 *>(buf);
	sim_pci_config_read(&vdev->config, off, out, count);
	for (size_t i = 0; i < count; i++) {
		u8 virt = vdev->perm_virt[off + i];
		out[i] = static_cast<u8>((out[i] & ~virt) |
					 (vdev->vconfig[off + i] & virt));
	}
}

bool vfio_pci_config_write(struct vfio_pci_core_device *vdev, u32 off,
			   const void *buf, size_t count)
{
	const u8 *val = static_cast<const u8 *>(buf);
	bool bars = false;

	for (size_t i = 0; i < count; i++) {
		u32 o = off + static_cast<u32>(i);
		u8 virt = vdev->perm_virt[o], write = vdev->perm_write[o];
		u8 vw = virt & write, pw = write & ~virt;
		vdev->vconfig[o] = static_cast<u8>((vdev->vconfig[o] & ~vw) |
						   (val[i] & vw));
		if (pw) {
			u8 hw = static_cast<u8>((vdev->config.regs[o] & ~pw) |
						(val[i] & pw));
			sim_pci_config_write(&vdev->config, o, &hw, 1);
		}
		if (o >= SIM_PCI_BASE_ADDRESS_0 && o < 0x34)
			bars = true;
	}
	if (bars)
		vfio_bar_fixup(vdev);

	u8 exp = vdev->config.exp_cap;
	if (!exp)
		return false;
	u32 devctl = exp + SIM_PCI_EXP_DEVCTL;
	u16 v;
	std::memcpy(&v, vdev->vconfig + devctl, 2);
	if (!(v & SIM_PCI_EXP_DEVCTL_BCR_FLR))
		return false;
	/* Initiate FLR reads as 0; the reset is the caller's to do. */
	v &= static_cast<u16>(~SIM_PCI_EXP_DEVCTL_BCR_FLR);
	std::memcpy(vdev->vconfig + devctl, &v, 2);
	return true;
}

void vfio_pci_save_state(struct vfio_pci_core_device *vdev,
			 struct vfio_pci_saved_state *st)
{
	const struct sim_pci_config *c = &vdev->config;

	std::memcpy(st->header, c->regs, sizeof(st->header));
	st->pm_ctrl = c->pm_cap ? sim_pci_config_read16(c, c->pm_cap +
							       SIM_PCI_PM_CTRL)
				: 0;
	st->msix_flags = c->msix_cap ?
		sim_pci_config_read16(c, c->msix_cap + SIM_PCI_MSIX_FLAGS) : 0;
	st->exp_devctl = c->exp_cap ?
		sim_pci_config_read16(c, c->exp_cap + SIM_PCI_EXP_DEVCTL) : 0;
	st->exp_devctl2 = c->exp_cap ?
		sim_pci_config_read16(c, c->exp_cap + 0x28) : 0;
}

void vfio_pci_restore_state(struct vfio_pci_core_device *vdev,
			    const struct vfio_pci_saved_state *st)
{
	struct sim_pci_config *c = &vdev->config;
	u8 header[64];

	/*
	 * Write the header back but the status error bits: they were
	 * cleared by the reset and a saved 1 would mean "clear" anyway.
	 */
	std::memcpy(header, st->header, sizeof(header));
	header[SIM_PCI_STATUS] = header[SIM_PCI_STATUS + 1] = 0;
	sim_pci_config_write(c, 0, header, sizeof(header));
	if (c->pm_cap)
		hw_write16(vdev, c->pm_cap + SIM_PCI_PM_CTRL, st->pm_ctrl);
	if (c->msix_cap)
		hw_write16(vdev, c->msix_cap + SIM_PCI_MSIX_FLAGS,
			   st->msix_flags);
	if (c->exp_cap) {
		hw_write16(vdev, c->exp_cap + SIM_PCI_EXP_DEVCTL,
			   static_cast<u16>(st->exp_devctl &
					    ~SIM_PCI_EXP_DEVCTL_BCR_FLR));
		hw_write16(vdev, c->exp_cap + 0x28, st->exp_devctl2);
	}
}
