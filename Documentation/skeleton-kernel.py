#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Regenerate Documentation/skeleton-kernel.c from drivers/skeleton/skeleton.cc.

The mechanical part of a kernel port (kernel includes, static instead of the
anonymous namespace, NULL, struct tags, no default member initializers, no
casts of void *), applied by exact replacements: when the skeleton changes in
a way they no longer match, this fails and says which, and the
"Porting to the kernel" figures in driver-guide.md need measuring again.

usage: skeleton-kernel.py SKELETON_CC OUTPUT_C
"""
import re, sys

HEADER = '''/*
 * NOT BUILT. drivers/skeleton/skeleton.cc with the mechanical part of a
 * kernel port applied (kernel includes, static instead of the anonymous
 * namespace, NULL, struct tags, no default member initializers, no casts
 * of void *), to measure what a port changes: see "Porting to the kernel"
 * in driver-guide.md for the diff size and for what is left (the lines
 * still marked uvfio:, std::vector/std::min, new, XXH3, the spec keys).
 * Regenerate it when the skeleton changes.
 */
'''
s=open(sys.argv[1]).read()
def rep(a,b):
    global s
    if a not in s:
        sys.exit('skeleton-kernel.py: the skeleton no longer has:\n' + a)
    s=s.replace(a,b,1)
rep('''#include <algorithm>
#include <cstring>
#include <vector>

#include <xxhash.h>

#include <uvfio/linux/cleanup.h>
#include <uvfio/linux/fault-inject.h>
#include <uvfio/linux/module.h>
#include <uvfio/linux/spinlock.h>
#include <uvfio/linux/uaccess.h>
#include <uvfio/linux/vfio_pci_simdev.h>
''','''#include <linux/anon_inodes.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/vfio_pci_core.h>
#include <linux/xxhash.h>

#include "skel_hw.h"	/* your device's commands (the simdev_* calls) */
''')
rep('namespace {\n\n','')
rep('\n} // namespace\n','')
# constants first: a #define takes no static
s=re.sub(r'constexpr u32 (\w+) = ([^;]*);', r'#define \1 \2', s)
# top-level definitions become static
s=re.sub(r'(?m)^(?!static|struct \w+ \{|struct \w+;|#|\s|/|\}|module_|MODULE_|DECLARE_)((?:const )?(?:struct |enum )?\w[\w ]*[ *]\w+(?:\(| =|\[))', r'static \1', s)
# C++ casts of void * -> implicit in C
s=re.sub(r'auto \*(\w+) = static_cast<(\w+) \*>\(([^;]*)\);', r'\2 *\1 = \3;', s)
s=re.sub(r'static_cast<struct vfio_pci_core_device \*>\(\n\t\t\tdev_get_drvdata\(&pdev->dev\)\)', 'dev_get_drvdata(&pdev->dev)', s)
s=s.replace('delete static_cast<skel_migf *>(filp->private_data);','skel_migf_free(filp->private_data);')
s=s.replace('nullptr','NULL')
# C has no default member initializers: kzalloc / vfio_alloc_device zero them
# (a member is a type and a name; a statement such as "x = NULL;" stays)
s=re.sub(r'(?m)^(\t(?:(?:struct|enum|const|unsigned) )*\w+[ \t]+\**\w+) = (?:NULL|false|0|VFIO_DEVICE_STATE_RUNNING);', r'\1;', s)
# struct tags are not type names in C
for t in ('skel_device','skel_migf','skel_hdr'):
    s=re.sub(r'(?<![\w ])(?<!struct )\b%s\b(?= \*| \w| h)' % t, 'struct '+t, s)
    s=re.sub(r'(?<=[(,\t ])(?<!struct )%s(?= \*)' % t, 'struct '+t, s)
s=s.replace('container_of(vdev, skel_device,','container_of(vdev, struct skel_device,').replace('container_of(core_device, skel_device,','container_of(core_device, struct skel_device,')
s=s.replace('vfio_alloc_device(skel_device,','vfio_alloc_device(struct skel_device,')
s=s.replace('struct struct ','struct ')
open(sys.argv[2], 'w').write(HEADER + s)
