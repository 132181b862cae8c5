#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Writes the hand-made seeds of the uapi and dma-logging fuzz targets.

Without seeds a fuzzer spends its first minutes finding out that a device
needs a container, a group, an IOMMU model and a mapping before most of
the uAPI does anything. These inputs, in the encodings the targets read
(fuzz_uapi.cc, fuzz_dma_logging.cc), do what a VMM does; the fuzzer mutates
from there. Run from the top of the tree:
    python3 tests/fuzz/make_seeds.py
"""
import os
import struct

TOP = os.path.dirname(os.path.abspath(__file__))

# fuzz_uapi.cc: the command table's indexes and the operations.
GET_INFO, GET_REGION_INFO, GET_IRQ_INFO, SET_IRQS, RESET, FEATURE, \
    API_VERSION, CHECK_EXT, SET_IOMMU, IOMMU_GET_INFO, MAP_DMA, UNMAP_DMA, \
    DIRTY_PAGES, GROUP_STATUS, SET_CONTAINER, UNSET_CONTAINER, \
    GET_DEVICE_FD, PRECOPY_INFO, HOT_RESET_INFO = range(19)
OP_OPEN_DEV, OP_OPEN_GROUP, OP_OPEN_CONTAINER, OP_CLOSE, OP_IOCTL, \
    OP_PREAD, OP_PWRITE, OP_READ, OP_WRITE, OP_DATA = 0, 1, 2, 3, 4, 7, 8, 9, 10, 11
OP_MMAP = 11 | 0x80

FEAT_GET, FEAT_SET, FEAT_PROBE = 1 << 16, 1 << 17, 1 << 18
MIGRATION, MIG_DEVICE_STATE, LOG_START, LOG_STOP, LOG_REPORT, \
    MIG_DATA_SIZE = 1, 2, 6, 7, 8, 9
STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY = 1, 2, 3, 4, 6
GUEST_IOVA = 1 << 32
PAGE = 4096


class Uapi:
    """An input for fuzz_uapi.cc; fds are numbered as the harness keeps
    them: 4 + the index in open order (0-3 are -1, eventfd, other, none)."""

    def __init__(self):
        self.b = bytearray()

    def op(self, *fields):
        for fmt, v in fields:
            self.b += struct.pack('<' + fmt, v)
        return self

    def open_dev(self, d):
        return self.op(('B', OP_OPEN_DEV), ('B', d))

    def open_group(self, d):
        return self.op(('B', OP_OPEN_GROUP), ('B', d))

    def open_container(self):
        return self.op(('B', OP_OPEN_CONTAINER))

    def ioctl(self, fd, cmd, arg=b'', mode=1):
        """mode 1: argsz = the argument's length (set by the harness)."""
        self.op(('B', OP_IOCTL), ('B', fd), ('B', cmd), ('B', mode),
                ('H', len(arg)))
        self.b += arg
        return self

    def feature(self, fd, flags, payload=b''):
        return self.ioctl(fd, FEATURE, struct.pack('<II', 0, flags) + payload)

    def set_state(self, fd, state):
        return self.feature(fd, FEAT_SET | MIG_DEVICE_STATE,
                            struct.pack('<Ii', state, -1))

    def rw(self, op, fd, region, off, count, data=b''):
        self.op(('B', op), ('B', fd), ('B', 0x80 | region), ('I', off),
                ('H', count))
        self.b += data
        return self

    def read(self, fd, count):
        return self.op(('B', OP_READ), ('B', fd), ('H', count))

    def data(self, off, payload):
        self.op(('B', OP_DATA), ('H', off), ('B', len(payload)))
        self.b += payload
        return self


def vm(d):
    """Container, group, type1v2, 64 KiB mapped, the device fd: fds 4-6."""
    u = Uapi().open_container().open_group(d)
    u.ioctl(5, SET_CONTAINER, struct.pack('<I', 4), mode=0)
    u.ioctl(4, SET_IOMMU, mode=3)		# the mode is the value: TYPE1v2
    u.ioctl(4, MAP_DMA, struct.pack('<IIQQQ', 0, 3, 0, GUEST_IOVA, 16 * PAGE))
    bdf = [b'0000:00:02.0', b'0000:00:03.0', b'0000:00:04.0'][d]
    u.ioctl(5, GET_DEVICE_FD, bdf + b'\0', mode=4 | (d << 3))
    return u


def uapi_seeds():
    seeds = {}

    u = vm(0)
    u.ioctl(6, GET_INFO, bytes(16))
    u.ioctl(6, GET_REGION_INFO, struct.pack('<IIIIQQ', 0, 0, 2, 0, 0, 0))
    u.ioctl(6, GET_IRQ_INFO, struct.pack('<IIII', 0, 0, 2, 0))
    # MSI-X vector 0 to the harness's eventfd (fd selector 1), loopback.
    u.ioctl(6, SET_IRQS, struct.pack('<IIIIIi', 0, 0x4 | 0x20, 2, 0, 1, 1))
    u.ioctl(6, SET_IRQS, struct.pack('<IIIII', 0, 0x1 | 0x20, 2, 0, 1))
    u.rw(OP_PREAD, 6, 7, 0, 64)
    u.rw(OP_PWRITE, 6, 0, 0x5c, 4, b'\x11\x22\x33\x44')
    u.rw(OP_PREAD, 6, 2, 0x100, 256)
    u.ioctl(6, RESET, mode=0)
    u.ioctl(4, IOMMU_GET_INFO, bytes(16))
    seeds['simnic-vm'] = u

    u = vm(0)
    u.feature(6, FEAT_GET | MIGRATION, bytes(8))
    u.feature(6, FEAT_GET | MIG_DATA_SIZE, bytes(8))
    u.set_state(6, PRE_COPY)			# data fd: 7
    u.ioctl(7, PRECOPY_INFO, bytes(24))
    u.read(7, 4096)
    u.set_state(6, STOP_COPY)
    u.read(7, 4096)
    u.set_state(6, RUNNING)
    seeds['simnic-precopy'] = u

    u = vm(0)
    u.data(0, struct.pack('<QQ', GUEST_IOVA, 16 * PAGE))
    u.feature(6, FEAT_SET | LOG_START,
              struct.pack('<QIIQ', PAGE, 1, 0, 4))	# ranges: data + 0
    u.rw(OP_PWRITE, 6, 2, 0, 8, b'dirtydev')
    u.feature(6, FEAT_GET | LOG_REPORT,
              struct.pack('<QQQQ', GUEST_IOVA, 16 * PAGE, PAGE,
                          4 + (1024 << 3)))		# bitmap: data + 1024
    u.feature(6, FEAT_SET | LOG_STOP)
    u.ioctl(4, DIRTY_PAGES, struct.pack('<II', 0, 1))	# START
    u.ioctl(4, DIRTY_PAGES, struct.pack('<IIQQQQQ', 0, 4, GUEST_IOVA,
                                         16 * PAGE, PAGE, 8,
                                         4 + (2048 << 3)))
    u.ioctl(4, UNMAP_DMA, struct.pack('<IIQQQQQ', 0, 1, GUEST_IOVA,
                                       16 * PAGE, PAGE, 8,
                                       4 + (3072 << 3)))
    u.ioctl(4, DIRTY_PAGES, struct.pack('<II', 0, 2))	# STOP
    seeds['simnic-logging'] = u

    # testdev by BDF (no container): resume what it saved.
    u = Uapi().open_dev(1)
    u.set_state(4, STOP_COPY)			# data fd: 5
    u.read(5, 16384)
    u.set_state(4, STOP)
    u.set_state(4, RESUMING)			# data fd: 6
    u.op(('B', OP_WRITE), ('B', 6), ('H', 64))
    u.b += bytes(64)
    u.set_state(4, STOP)
    u.op(('B', OP_CLOSE), ('B', 1))
    u.set_state(4, RUNNING)
    u.op(('B', OP_MMAP), ('B', 4), ('B', 0x82), ('I', 0), ('B', 0),
         ('B', 3))
    seeds['testdev-roundtrip'] = u

    # simmin: IOMMU dirty tracking only.
    u = vm(2)
    u.ioctl(4, DIRTY_PAGES, struct.pack('<II', 0, 1))
    u.set_state(6, STOP_COPY)
    u.read(7, 4096)
    u.ioctl(5, UNSET_CONTAINER, mode=0)
    u.ioctl(5, GROUP_STATUS, bytes(8))
    seeds['simmin-vm'] = u
    return {k: bytes(v.b) for k, v in seeds.items()}


def dma_logging_seeds():
    """fuzz_dma_logging.cc: op byte (0/1 START, 2 REPORT, 3 STOP), then
    each operation's fields in the order the harness reads them."""
    def start(ranges, page_size_log=12):
        b = struct.pack('<BB', 0, page_size_log)
        b += struct.pack('<HB', len(ranges), 0)
        for iova, length in ranges:
            # pick_iova: selector 0 = raw u64
            b += struct.pack('<BQBQ', 0, iova, 0, length)
        return b + struct.pack('<BB', 0, 0)

    def report(iova, length, page_size_log=12, at=0):
        return struct.pack('<BBQBQBHBB', 2, 0, iova, 0, length,
                           page_size_log, at, 0, 0)

    def dma(off, length, byte=0x5a):
        """The device fills guest memory at PAGE + off % (guest - PAGE)."""
        return struct.pack('<BIHB', 4, off, length, byte)

    stop = struct.pack('<BB', 3, 0)
    g = GUEST_IOVA
    return {
        'one-range': start([(g, 16 * PAGE)]) + report(g, 16 * PAGE) + stop,
        'dma-reported': start([(g, 64 * PAGE)]) + dma(0, 100) +
        dma(3 * PAGE + 5, 2 * PAGE) + report(g, 64 * PAGE) + dma(0, 1) +
        report(g, 2 * PAGE, 12, 200) + report(g + 2 * PAGE, 62 * PAGE) + stop,
        'dma-granule': start([(g + 4 * PAGE, 8 * PAGE)], 14) +
        dma(2 * PAGE, 4 * PAGE) + report(g, 32 * PAGE, 12, 300) + stop +
        dma(PAGE, 10),
        'two-ranges': start([(g, 4 * PAGE), (g + 8 * PAGE, 8 * PAGE)], 13) +
        report(g, 64 * PAGE, 12, 100) + report(g + PAGE, PAGE) + stop +
        report(g, PAGE),
        'restart': start([(0, 1 << 20)]) + start([(g, PAGE)]) + stop +
        start([(g, 1 << 30)], 21) + report(g, 1 << 30, 21) + stop,
    }


def write(target, seeds):
    d = os.path.join(TOP, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    for name, b in seeds.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(b)
        print(f'{target}/{name}: {len(b)} bytes')


write('uapi', uapi_seeds())
write('dma-logging', dma_logging_seeds())
