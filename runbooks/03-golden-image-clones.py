# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (rbdnb)
#     language: python
#     name: rbdnb
# ---

# %% [markdown]
# # 03 — Golden image, many clones
#
# Snapshot a golden image once, clone many VM disks from it at once (copy-on-write: milliseconds each, no data copied), boot several VMs, flatten one. Then measure a clone against a full copy and plot it.

# %% tags=["parameters"]
# Parameters (papermill -p NAME VALUE): NAME: "KIND" = DEFAULT  # help (the kinds: rbdnb.runbooks.parameters).
# The defaults run against the rbdnb sandbox.
conf: "file" = None                 # a cluster's ceph.conf; None: the running sandbox
client: "client" = "admin"          # the cephx client that runs these steps
keyring: "file" = None              # its keyring; None: the one the conf names
libvirt_uri: "uri" = None           # None: the sandbox's (qemu:///system as root, qemu:///session otherwise)
dry_run: "bool" = False             # show each step's commands and change nothing
timeout: "int[1,3600]" = 30         # seconds a call to the cluster may wait before it is an error
guest_dir: "dir" = None             # where the offline guest is built; None: rbdnb's data dir
source_image: "file" = None         # a qcow2/raw VM image; None: build the offline guest
pool: "pool" = "golden-pool"
user: "client" = "golden"           # client.golden: least privilege on the pool, for libvirt
golden: "image" = "golden"
snapshot: "snapshot" = "base"
vm_prefix: "name" = "vm-"
vm_count: "count" = 10
boot_count: "int[0,vm_count]" = 2
measure_count: "count" = 20
boot_timeout: "int[10,3600]" = 120


# %%
import time
import pandas as pd
import rbdnb
from rbdnb import guest, virt
from rbdnb.runbooks import begin
rb, cluster = begin('03-golden-image-clones')
conn = virt.connect_libvirt(libvirt_uri)

# %% [markdown]
# ## The golden image and its snapshot

# %%
# %ceph osd pool create {pool}
boot = guest.offline_guest(guest_dir, dry_run=dry_run) if source_image is None else None
image = source_image or boot.image

# %%
# %rbd import {image} {pool}/{golden} --exist-ok
# %rbd snap create {pool}/{golden}@{snapshot} --exist-ok

# %% [markdown]
# ## Clone the VM disks, all at once
#
# `rbd clone` once per disk, done concurrently (`--count N` and a `{i}` pattern are rbdnb's).

# %% tags=["guide-x.2"]
# clones = %rbd clone {pool}/{golden}@{snapshot} {pool}/{vm_prefix}{{i:03d}} --count {vm_count} --exist-ok
None if dry_run else clones.value  # noqa: F821 -- clones is the magic's result, above

# %% [markdown]
# ## Boot some of them
#
# Each VM boots from its own clone; the console shows the guest's marker and the checksum of the disk it sees.

# %% tags=["guide-x.3"]
# %ceph auth get-or-create client.{user} mon 'profile rbd' osd 'profile rbd pool={pool}' mgr 'profile rbd pool={pool}'
# %virsh pool-define-rbd ceph-{pool} {pool} --client {user}

# %% tags=["guide-x.3"]
home = guest.home(guest_dir, dry_run=dry_run)  # the VMs' console logs
vms = [f'rbdnb-{pool}-{vm_prefix}{i:03d}' for i in range(1, boot_count + 1)] if boot else []
for i, name in enumerate(vms, 1):
    rb.step(virt.define_vm(conn, name, [f'{pool}/{vm_prefix}{i:03d}'], boot=boot, console_log=str(home / f'{name}.console.log'), exist_ok=True, cluster=cluster, dry_run=dry_run))
    rb.step(virt.start_vm(conn, name, dry_run=dry_run))
for name in vms:
    rb.step(virt.wait_guest(conn, name, timeout=boot_timeout, dry_run=dry_run))

# %% [markdown]
# ## Flatten one
#
# A flattened clone holds its own copy of the data and no longer depends on the snapshot.

# %% tags=["guide-x.4"]
flat = f'{pool}/{vm_prefix}flat'
if not dry_run and flat.split('/')[1] in rbdnb.image_names(cluster, pool) \
        and rbdnb.image_info(cluster, flat).parent is None:
    rb.note(f'clone and flatten {flat}', False, 'unchanged: already a flattened clone')
else:
    rb.step(rbdnb.clone(cluster, f'{pool}/{golden}@{snapshot}', flat, exist_ok=True, dry_run=dry_run))
    rb.step(rbdnb.flatten(cluster, flat, dry_run=dry_run))

# %% [markdown]
# ## Clone time against full-copy time
#
# Throwaway images, removed afterwards: `measure_count` clones at once, and full copies (`rbd cp`) of the golden image.

# %% tags=["guide-x.5"]
if not dry_run:
    t0 = time.perf_counter()
    tmp = rbdnb.clone_many(cluster, f'{pool}/{golden}@{snapshot}', f'{pool}/measure-{{i}}', count=measure_count)
    clone_each = (time.perf_counter() - t0) / measure_count
    copies = []
    for i in range(2):
        t0 = time.perf_counter()
        rbdnb.copy_image(cluster, f'{pool}/{golden}', f'{pool}/fullcopy-{i}')
        copies.append(time.perf_counter() - t0)
    for name in list(tmp.value.name) + [f'{pool}/fullcopy-{i}' for i in range(2)]:
        rbdnb.remove_image(cluster, name, confirm=True)
    timing = pd.DataFrame({'seconds per disk': [clone_each, sum(copies) / len(copies)]},
                          index=['copy-on-write clone', 'full copy (rbd cp)'])
    rb.note('measure clone vs full copy', False, f'a clone took {clone_each * 1000:.1f} ms, a full copy {timing.iloc[1, 0]:.2f} s; temporary images removed')
    ax = timing.plot.barh(legend=False, logx=True, title='Time to make one VM disk')
    ax.set_xlabel('seconds (log scale)')
    display(timing)

# %%
rb.summary()
