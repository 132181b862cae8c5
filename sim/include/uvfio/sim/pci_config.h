/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * <uvfio/sim/pci_config.h> - the configuration space of a simulated PCI
 * function: 4 KiB of registers with per-byte access masks, a reset image,
 * BARs that answer the sizing protocol, and a capability list (PM, MSI-X,
 * PCI Express endpoint, one vendor-specific capability).
 *
 * Masks, per byte: a bit set in rw takes the written value; a bit set in
 * w1c is cleared by writing 1 and kept by writing 0; every other bit is
 * read-only. A write computes new = (old & ~rw) | (val & rw), then clears
 * the w1c bits written as 1.
 *
 * Locking is the caller's: the function's owner serializes calls.
 */
#ifndef UVFIO_SIM_PCI_CONFIG_H
#define UVFIO_SIM_PCI_CONFIG_H

#include <cstddef>

#include <stdint.h>

/* Register offsets and bits (values as in the PCI specification). */
#define SIM_PCI_CFG_SIZE 4096
#define SIM_PCI_VENDOR_ID 0x00
#define SIM_PCI_DEVICE_ID 0x02
#define SIM_PCI_COMMAND 0x04
#define  SIM_PCI_COMMAND_MEMORY 0x0002
#define  SIM_PCI_COMMAND_MASTER 0x0004
#define  SIM_PCI_COMMAND_INTX_DISABLE 0x0400
#define SIM_PCI_STATUS 0x06
#define  SIM_PCI_STATUS_CAP_LIST 0x0010
#define  SIM_PCI_STATUS_ERR_BITS 0xf900	/* parity, aborts, SERR: W1C */
#define SIM_PCI_REVISION_ID 0x08
#define SIM_PCI_CLASS_PROG 0x09
#define SIM_PCI_HEADER_TYPE 0x0e
#define SIM_PCI_BASE_ADDRESS_0 0x10
#define  SIM_PCI_BAR_MEM_TYPE_64 0x04
#define  SIM_PCI_BAR_MEM_PREFETCH 0x08
#define SIM_PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define SIM_PCI_SUBSYSTEM_ID 0x2e
#define SIM_PCI_CAPABILITY_LIST 0x34
#define SIM_PCI_INTERRUPT_LINE 0x3c
#define SIM_PCI_INTERRUPT_PIN 0x3d

#define SIM_PCI_CAP_ID_PM 0x01
#define SIM_PCI_CAP_ID_VNDR 0x09
#define SIM_PCI_CAP_ID_EXP 0x10
#define SIM_PCI_CAP_ID_MSIX 0x11

/* Offsets inside the PCI Express capability. */
#define SIM_PCI_EXP_FLAGS 0x02
#define SIM_PCI_EXP_DEVCAP 0x04
#define  SIM_PCI_EXP_DEVCAP_FLR 0x10000000
#define SIM_PCI_EXP_DEVCTL 0x08
#define  SIM_PCI_EXP_DEVCTL_BCR_FLR 0x8000
#define SIM_PCI_EXP_DEVSTA 0x0a
#define SIM_PCI_EXP_CAP_SIZE 0x3c	/* version 2, endpoint */

/* Offsets inside the MSI-X capability. */
#define SIM_PCI_MSIX_FLAGS 0x02
#define  SIM_PCI_MSIX_FLAGS_QSIZE 0x07ff
#define  SIM_PCI_MSIX_FLAGS_MASKALL 0x4000
#define  SIM_PCI_MSIX_FLAGS_ENABLE 0x8000
#define SIM_PCI_MSIX_TABLE 0x04
#define SIM_PCI_MSIX_PBA 0x08

/* Offsets inside the PM capability. */
#define SIM_PCI_PM_PMC 0x02
#define SIM_PCI_PM_CTRL 0x04

#define SIM_PCI_NUM_BARS 6
#define SIM_PCI_VNDR_CAP_LEN 16	/* ID, next, length, 13 RW data bytes */

/* One memory BAR of the function. */
struct sim_pci_bar_desc {
	uint64_t size = 0;	/* 0: absent; else a power of two >= 16 */
	bool is_64 = false;	/* takes this register and the next */
	bool prefetch = false;
};

/* What the function looks like; the capability layout follows from it. */
struct sim_pci_config_desc {
	uint16_t vendor_id = 0;
	uint16_t device_id = 0;
	uint16_t subsys_vendor_id = 0;
	uint16_t subsys_id = 0;
	uint8_t revision = 0;
	uint32_t class_code = 0;	/* base << 16 | sub << 8 | prog-if */
	bool has_intx = true;
	struct sim_pci_bar_desc bars[SIM_PCI_NUM_BARS];
	/* Bytes 0x40 up to this offset: device-specific RW registers. */
	uint32_t dev_specific_end = 0x40;
	uint32_t msix_count = 0; /* 0: no MSI-X capability; at most 2048 */
	uint8_t msix_table_bar = 0;
	uint32_t msix_table_offset = 0;	/* 8-byte aligned */
	uint8_t msix_pba_bar = 0;
	uint32_t msix_pba_offset = 0;	/* 8-byte aligned */
	bool is_pcie = true;	/* PCI Express endpoint capability, with FLR */
	bool vendor_cap = true;	/* a vendor-specific capability */
};

struct sim_pci_config;

/* Called at the end of every function-level reset. */
typedef void (*sim_pci_reset_hook)(struct sim_pci_config *cfg, void *arg);
/*
 * Called when a config write sets Initiate FLR. Without one, the write
 * resets the function at once; with one, the owner decides when (for
 * instance after dropping a lock) and calls sim_pci_config_flr().
 */
typedef void (*sim_pci_flr_request)(struct sim_pci_config *cfg, void *arg);

struct sim_pci_config {
	uint8_t regs[SIM_PCI_CFG_SIZE] = {};
	uint8_t rw[SIM_PCI_CFG_SIZE] = {};
	uint8_t w1c[SIM_PCI_CFG_SIZE] = {};
	uint8_t reset_image[SIM_PCI_CFG_SIZE] = {};

	/* Where the capabilities landed (0: absent). */
	uint8_t pm_cap = 0;
	uint8_t msix_cap = 0;
	uint8_t exp_cap = 0;
	uint8_t vndr_cap = 0;

	sim_pci_reset_hook reset_hook = nullptr;
	sim_pci_flr_request flr_request = nullptr;
	void *hook_arg = nullptr;
	unsigned long flrs = 0;	/* completed function-level resets */
};

/*
 * Build the registers, masks and reset image from desc, and load the reset
 * image. 0, or -EINVAL for a description that does not fit (a BAR size
 * that is not a power of two, a 64-bit BAR in register 5 or followed by
 * another BAR, too many MSI-X vectors, a misaligned table or PBA, an MSI-X
 * BAR that is absent).
 */
int sim_pci_config_init(struct sim_pci_config *cfg,
			const struct sim_pci_config_desc *desc);

/* Accesses wholly inside the 4 KiB; the caller checks bounds. */
void sim_pci_config_read(const struct sim_pci_config *cfg, uint32_t off,
			 void *buf, size_t len);
void sim_pci_config_write(struct sim_pci_config *cfg, uint32_t off,
			  const void *buf, size_t len);

/* The device model's view of the command register. */
bool sim_pci_config_mem_enabled(const struct sim_pci_config *cfg);
bool sim_pci_config_bus_master(const struct sim_pci_config *cfg);
bool sim_pci_config_intx_disabled(const struct sim_pci_config *cfg);

/* Set or clear command bits as the platform (not the user) does. */
void sim_pci_config_set_command(struct sim_pci_config *cfg, uint16_t set,
				uint16_t clear);

/* Latch error bits in Status as the hardware does when it sees errors. */
void sim_pci_config_set_status_errors(struct sim_pci_config *cfg,
				      uint16_t bits);

/* Function-level reset: load the reset image, then call the reset hook. */
void sim_pci_config_flr(struct sim_pci_config *cfg);

uint16_t sim_pci_config_read16(const struct sim_pci_config *cfg,
			       uint32_t off);
uint32_t sim_pci_config_read32(const struct sim_pci_config *cfg,
			       uint32_t off);

#endif /* UVFIO_SIM_PCI_CONFIG_H */
