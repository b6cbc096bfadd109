# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (rbdnb)
#     language: python
#     name: rbdnb
# ---

# %% [markdown]
# # 06 — Disaster recovery with RBD mirroring
#
# A VM's disks at site a are mirrored to site b (another Ceph cluster with its own hypervisor), snapshot by snapshot, by the `rbd-mirror` daemon of site b. The drills an operator rehearses, each checked by checksum of the disks at both sites:
#
# 1. **planned failover** — stop the VM at a, demote its disks, let b copy the last snapshot, promote b, boot the VM at b: nothing is lost;
# 2. **failback** — write at b, then the same the other way;
# 3. **unplanned failover** — site a is lost with writes made after its last mirror snapshot: force-promote b and boot there; those writes are lost (the RPO), and the time to a booted VM is the RTO;
# 4. **the way back** — demote a, resync it from b, fail back.
#
# The sandbox has two sites and two hypervisors with `rbdnb sandbox up --hosts 2 --sites 2`.

# %% tags=["parameters"]
# Parameters (papermill -p NAME VALUE): NAME: "KIND" = DEFAULT  # help (the kinds: rbdnb.runbooks.parameters).
# The defaults run against the rbdnb sandbox started with --hosts 2 --sites 2.
conf: "file" = None                 # site a's ceph.conf; None: the running sandbox
client: "client" = "admin"          # the cephx client that runs these steps (at both sites)
keyring: "file" = None              # its keyring; None: the one the conf names
peer_conf: "file" = None            # site b's ceph.conf; None: the sandbox's site b
libvirt_uri: "uri" = None           # site a's hypervisor; None: the sandbox's first host
peer_uri: "uri" = None              # site b's hypervisor; None: the fleet's next host (the sandbox's host2)
dry_run: "bool" = False             # show each step's commands and change nothing
timeout: "int[1,3600]" = 30         # seconds a call to a cluster may wait before it is an error
guest_dir: "dir" = None             # where the offline guest is built; None: rbdnb's data dir
pool: "pool" = "dr-pool"            # mirrored between the sites
pg_num: "int[1,32768]" = 16
libvirt_pool: "pool" = "dr-libvirt-pool"
user: "client" = "dr-libvirt"       # the VM's cephx user (at each site its own key and libvirt secret)
vm: "domain" = "rbdnb-dr-vm"
lost_mib: "int[1,15]" = 4           # MiB written at site a after its last mirror snapshot, then lost
boot_timeout: "int[10,3600]" = 120
sync_timeout: "int[10,3600]" = 120

# %%
from rbdnb import guest, virt
from rbdnb.ceph import mirror
from rbdnb.ceph.cluster import connect
from rbdnb.runbooks import begin
from rbdnb.virt.recovery import Sites

rb, cluster = begin('06-disaster-recovery')
peer = connect(mirror.peer_conf(peer_conf), client=client, timeout=timeout)
uri_a, uri_b = virt.other_host(libvirt_uri, peer_uri)
sites = Sites(cluster, peer, uri_a, uri_b, pool, vm, user=user, libvirt_pool=libvirt_pool, pg_num=pg_num, boot_timeout=boot_timeout, sync_timeout=sync_timeout)

# %% [markdown]
# ## Two sites that mirror one pool
#
# At each site: `ceph osd pool create`, `rbd mirror pool enable --site-name a|b dr-pool image`, the VM's user, its libvirt secret and rbd pool on that site's hypervisor. Then `rbd mirror pool peer bootstrap create` at a and `... import --direction rx-tx` at b — the token holds a key, so rbdnb hands it from one cluster to the other in memory; it is never shown or written.

# %% tags=["guide-x.10"]
rb.step(sites.prepare(dry_run=dry_run))

# %% [markdown]
# ## The VM at site a, its disks mirrored
#
# Its boot disk is rbdnb's offline guest, imported; a data disk beside it. `rbd mirror image enable POOL/IMAGE snapshot` for both, then a mirror snapshot that site b copies. The VM is defined at both hypervisors (each with its own site's monitors) and runs at a.

# %%
home = guest.home(guest_dir, dry_run=dry_run)
image = guest.offline_guest(guest_dir, dry_run=dry_run).image
rb.step(sites.place_vm(image, guest.boot_of(image), home, dry_run=dry_run))

# %% [markdown]
# ## Planned failover, then failback

# %% tags=["guide-x.11"]
rb.step(sites.failover(planned=True, dry_run=dry_run))
rb.step(sites.fail_back(dry_run=dry_run))

# %% [markdown]
# ## Unplanned failover: site a is lost
#
# `rbd mirror image promote --force` at b. What site a wrote after its last mirror snapshot is lost: the checksums show that b holds exactly that snapshot's data. Then site a comes back: `rbd mirror image demote` and `rbd mirror image resync` there, and the VM fails back.

# %% tags=["guide-x.12"]
rb.step(sites.failover(planned=False, write_mib=lost_mib, dry_run=dry_run))
rb.step(sites.fail_back(dry_run=dry_run))

# %% [markdown]
# ## RTO and RPO of each drill

# %%
if not dry_run:
    drills = sites.frame()
    display(drills)
    ax = drills.plot.bar(x='drill', y='rto_s', legend=False, rot=15, title=f'{vm}: time to a booted VM at the other site (RTO)')
    ax.set_ylabel('seconds')
    ax2 = drills.plot.bar(x='drill', y='rpo_bytes', legend=False, rot=15, title='data lost (RPO)')
    ax2.set_ylabel('bytes')

# %%
peer.close()
rb.summary()
