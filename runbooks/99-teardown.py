# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (rbdnb)
#     language: python
#     name: rbdnb
# ---

# %% [markdown]
# # 99 — Teardown
#
# Removes what the other runbooks made: their VMs, libvirt pools and secrets, the users and the pools with all their images. Refuses unless `confirm` is set.

# %% tags=["parameters"]
# Parameters (papermill -p NAME VALUE): NAME: "KIND" = DEFAULT  # help (the kinds: rbdnb.runbooks.parameters).
# The defaults run against the rbdnb sandbox.
conf: "file" = None                 # a cluster's ceph.conf; None: the running sandbox
client: "client" = "admin"          # the cephx client that runs these steps
keyring: "file" = None              # its keyring; None: the one the conf names
libvirt_uri: "uri" = None           # None: the sandbox's (qemu:///system as root, qemu:///session otherwise)
dry_run: "bool" = False             # show each step's commands and change nothing
timeout: "int[1,3600]" = 30         # seconds a call to the cluster may wait before it is an error
confirm: "bool" = False             # set True to really remove everything below
pools: "list[pool]" = ["rdb_1", "libvirt-pool", "golden-pool", "bench-pool"]
users: "list[client]" = ["libvirt", "golden"]
vm_prefix: "name" = "rbdnb-"
free_images: "list[image]" = []     # on a full cluster: images to remove first, by free_space


# %%
import rbdnb
from rbdnb import virt
from rbdnb.runbooks import begin
from IPython.core.error import UsageError
rb, cluster = begin('99-teardown')
if not confirm and not dry_run:
    raise UsageError('bad parameter: teardown removes pools and all their images: run with -p confirm True')
conn = virt.connect_libvirt(libvirt_uri)

# %% [markdown]
# ## A full cluster first
#
# Removing a pool is a monitor operation and works on a full cluster; images named in `free_images` are removed first with `free_space` (deletes through the full pool, the full ratio raised only if needed, then restored).

# %%
if free_images:
    rb.step(rbdnb.free_space(cluster, free_images, confirm=confirm, dry_run=dry_run))

# %% [markdown]
# ## VMs, libvirt pools and secrets

# %% tags=["guide-x.7"]
# libvirt is machine-wide: only what uses these Ceph pools on this cluster's monitors.
ours = virt.objects_on_cluster(conn, virt.monitor_hosts(cluster), ceph_pools=pools)
for name in ours.domains:
    if name.startswith(vm_prefix):
        rb.step(virt.destroy_vm(conn, name, dry_run=dry_run))
        rb.step(virt.undefine_vm(conn, name, dry_run=dry_run))
for name in ours.pools:
    rb.step(virt.delete_rbd_pool(conn, name, dry_run=dry_run))
for uuid in ours.secrets:
    rb.step(virt.undefine_secret(conn, uuid, dry_run=dry_run))

# %% [markdown]
# ## Users and pools

# %% tags=["guide-x.7"]
for u in users:
    rb.step(rbdnb.delete_user(cluster, u, confirm=True, missing_ok=True, dry_run=dry_run))
for p in pools:
    rb.step(rbdnb.delete_pool(cluster, p, confirm=True, missing_ok=True, dry_run=dry_run))

# %%
rb.summary()
