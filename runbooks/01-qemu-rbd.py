# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (rbdnb)
#     language: python
#     name: rbdnb
# ---

# %% [markdown]
# # 01 — QEMU and RBD
#
# The guide's section 1: QEMU reaches the cluster through `rbd:pool/image` names, with the conf, the client id and a keyring *path* (never a key). Create, resize and inspect an image with `qemu-img`, then import a VM image into RBD and prove by checksum that the bytes arrived.

# %% tags=["parameters"]
# Parameters (papermill -p NAME VALUE): NAME: "KIND" = DEFAULT  # help (the kinds: rbdnb.runbooks.parameters).
# The defaults run against the rbdnb sandbox.
conf: "file" = None             # a cluster's ceph.conf; None: the running sandbox
client: "client" = "admin"      # the cephx client that runs these steps
keyring: "file" = None          # its keyring; None: the one the conf names
libvirt_uri: "uri" = None       # None: the sandbox's (qemu:///system as root, qemu:///session otherwise)
dry_run: "bool" = False         # show each step's commands and change nothing
timeout: "int[1,3600]" = 30     # seconds a call to the cluster may wait before it is an error
guest_dir: "dir" = None         # where the offline guest is built; None: rbdnb's data dir
source_image: "file" = None     # a qcow2/raw VM image; None: build the offline guest
pool: "pool" = "rdb_1"          # the guide's pool
image: "image" = "image3"
size: "size" = "1G"
grown_size: "size" = "10G"
imported: "image" = "vm-image"


# %% tags=["guide-1.1"]
import rbdnb
from rbdnb import guest
from rbdnb.runbooks import begin
rb, cluster = begin('01-qemu-rbd')

# %% [markdown]
# ## A pool for the images
#
# `ceph osd pool create` and `rbd pool init`.

# %%
# %ceph osd pool create {pool}

# %% [markdown]
# ## qemu-img create, resize, info on rbd:
#
# `qemu-img create -f raw rbd:rdb_1/image3 1G`, then grow it to 10G. (`--exist-ok` is rbdnb's: an image of that size already there is left as it is, so the runbook can run again.)

# %% tags=["guide-1.2"]
# %qemu-img create -f raw rbd:{pool}/{image} {size} --exist-ok

# %% tags=["guide-1.3"]
# %qemu-img resize rbd:{pool}/{image} {grown_size}

# %% tags=["guide-1.4"]
# %qemu-img info rbd:{pool}/{image}

# %% [markdown]
# ## Import a VM image
#
# The guide downloads a CentOS cloud image; offline, rbdnb builds a small guest from this host's kernel and busybox (`rbdnb guest build`). Pass `source_image` to import your own. `qemu-img convert -f qcow2 -O raw ... rbd:...`

# %% tags=["guide-1.5"]
boot = guest.offline_guest(guest_dir, dry_run=dry_run) if source_image is None else None
source = source_image or boot.image
rb.step(rbdnb.import_image(cluster, source, f'{pool}/{imported}', exist_ok=True, dry_run=dry_run))

# %% [markdown]
# ## Check it
#
# `qemu-img info` says raw, and the image holds the source's bytes.

# %% tags=["guide-1.6"]
# %qemu-img info rbd:{pool}/{imported}
if not dry_run:
    check = rbdnb.verify_image(cluster, source, f'{pool}/{imported}')
    assert check.identical, check
    rb.note('verify by checksum', False, str(check))

# %%
rb.summary()
