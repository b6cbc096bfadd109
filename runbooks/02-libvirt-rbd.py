# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (rbdnb)
#     language: python
#     name: rbdnb
# ---

# %% [markdown]
# # 02 — libvirt with Ceph RBD
#
# The guide's section 2: a pool and a least-privilege `client.libvirt`, a libvirt secret holding its key (set through libvirt's API, never shown), a libvirt `rbd` storage pool, a VM whose disk lives in it, its XML, the `virsh edit` step that turns a file disk into an RBD network disk, and a further RBD disk attached to the running VM and detached again.

# %% tags=["parameters"]
# Parameters (papermill -p NAME VALUE): NAME: "KIND" = DEFAULT  # help (the kinds: rbdnb.runbooks.parameters).
# The defaults run against the rbdnb sandbox.
conf: "file" = None                 # a cluster's ceph.conf; None: the running sandbox
client: "client" = "admin"          # the cephx client that runs these steps
keyring: "file" = None              # its keyring; None: the one the conf names
libvirt_uri: "uri" = None           # None: the sandbox's (qemu:///system as root, qemu:///session otherwise)
libvirt_uris: "list[uri]" = []      # every hypervisor that gets the secret and the pool; []: the fleet ($RBDNB_LIBVIRT_URIS, the sandbox's hosts) if it holds libvirt_uri, else libvirt_uri alone
dry_run: "bool" = False             # show each step's commands and change nothing
timeout: "int[1,3600]" = 30         # seconds a call to the cluster may wait before it is an error
guest_dir: "dir" = None             # where the offline guest is built; None: rbdnb's data dir
source_image: "file" = None         # a qcow2/raw VM image; None: build the offline guest
pool: "pool" = "libvirt-pool"
pg_num: "int[1,32768]" = 32         # the guide uses 128 on a real cluster
libvirt_pool: "pool" = "ceph-libvirt-pool"
user: "client" = "libvirt"          # client.libvirt
keyring_dir: "dir" = None           # where client.libvirt's keyring goes (0600); None: rbdnb's data dir
vm: "domain" = "rbdnb-guide-vm"
edited_vm: "domain" = "rbdnb-guide-edited"
os_data: "image" = "os-data"
os_data_size: "size" = "10G"
boot_timeout: "int[10,3600]" = 120


# %% tags=["guide-2.5"]
from rbdnb import guest, virt
from rbdnb.ceph.users import keyring_path
from rbdnb.runbooks import begin
rb, cluster = begin('02-libvirt-rbd')
conn = virt.connect_libvirt(libvirt_uri)
keyring_file = keyring_path(user, keyring_dir)

# %% [markdown]
# ## On a monitor node: the pool and the user
#
# `ceph osd pool create libvirt-pool 128 128`, `rbd pool init libvirt-pool`, `qemu-img create -f rbd rbd:libvirt-pool/os-data 10G`.

# %% tags=["guide-2.1"]
# %ceph osd pool create {pool} {pg_num}

# %% tags=["guide-2.2"]
# %qemu-img create -f rbd rbd:{pool}/{os_data} {os_data_size} --exist-ok
# %rbd -p {pool} ls

# %% [markdown]
# `ceph auth get-or-create client.libvirt` with today's least-privilege caps (`profile rbd`, on this pool only), its keyring written to a file (mode 0600) for the libvirt host.

# %% tags=["guide-2.3", "guide-2.4"]
# %ceph auth get-or-create client.{user} mon 'profile rbd' osd 'profile rbd pool={pool}' mgr 'profile rbd pool={pool}' -o {keyring_file}

# %% [markdown]
# ## On the libvirt host: the secret and the storage pool
#
# A secret of usage type `ceph` named `client.libvirt secret`; its value is the key, set through libvirt's API (the guide's `virsh secret-set-value --base64 KEY` puts the key on a command line, which rbdnb never does).

# %% tags=["guide-2.6", "guide-2.7"]
# %virsh secret-define --client {user}

# %% [markdown]
# The `rbd` storage pool `ceph-libvirt-pool`: source `libvirt-pool`, the monitors, auth `libvirt` with the secret. Defined, started, autostarted — on every hypervisor of the fleet, each with the secret of the same UUID (a VM's disks name it, so a VM can move between them).

# %% tags=["guide-2.8"]
# %virsh pool-define-rbd {libvirt_pool} {pool} --client {user} --fleet
# %virsh vol-list {libvirt_pool}

# %% [markdown]
# ## A VM whose disk is in that pool
#
# The guide runs `virt-install --disk pool=ceph-libvirt-pool` with a downloaded CentOS image; here the image is `source_image`, else rbdnb's small offline guest (built once), and the VM's disk is a copy-on-write clone of it, made in the pool.

# %%
home = guest.home(guest_dir, dry_run=dry_run)  # guests, disks and console logs
image = source_image or guest.offline_guest(guest_dir, dry_run=dry_run).image
console = home / f'{vm}.console.log'

# %% tags=["guide-2.9"]
# %rbd import {image} {pool}/golden --exist-ok
# %rbd snap create {pool}/golden@base --exist-ok
# %rbd clone {pool}/golden@base {pool}/{vm} --exist-ok

# %% tags=["guide-2.9"]
# %virsh define {vm} --disk {pool}/{vm} --guest {image} --console-log {console} --exist-ok
# %virsh start {vm}
# %virsh console {vm} --disk vda --timeout {boot_timeout}

# %% [markdown]
# ## The VM's XML
#
# `virsh dumpxml` — the disk is a `network` disk, protocol `rbd`, with the monitors and the cephx auth.

# %% tags=["guide-2.10"]
# %virsh dumpxml {vm}

# %% [markdown]
# ## The `virsh edit` step: a file disk becomes an RBD disk
#
# A VM defined with a file-backed disk (as `virt-install` makes), then its `vda` replaced by `libvirt-pool/os-data`; the rest of its XML stays as it was.

# %% tags=["guide-2.11"]
rb.step(virt.define_file_vm(conn, edited_vm, image, home, boot=guest.boot_of(image), dry_run=dry_run))
# %virsh replace-disk {edited_vm} vda {pool}/{os_data}
# %virsh domblklist {edited_vm} --inactive

# %% [markdown]
# ## Attach a further RBD disk to the running VM, then detach it
#
# The host writes a MiB into a new image with librbd; the guest reports the same checksum for its new disk; then the disk is detached. The VM ends as it began.

# %% tags=["guide-x.1"]
if source_image is None:
    rb.step(virt.check_hotplug(conn, cluster, vm, f'{pool}/{vm}-data', target='vdb', timeout=boot_timeout, dry_run=dry_run))

# %%
rb.summary()
