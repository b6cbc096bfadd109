# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (rbdnb)
#     language: python
#     name: rbdnb
# ---

# %% [markdown]
# # 05 — Live migration of an RBD-backed VM
#
# A VM whose disk lives in Ceph moves between hypervisors without copying its disk: only its memory travels. Both hosts need the same libvirt secret (one UUID: the VM's disk XML names it) and see the same monitors. This runbook gives both hosts the secret and the rbd pool, boots a VM on the first, moves it to the second and back while it runs, shows from its console that the guest never rebooted, and plots how long it was paused each time (libvirt's own job statistics).
#
# The sandbox runs two libvirt hosts with `rbdnb sandbox up --hosts 2`; on real hypervisors give `dest_uri` (e.g. `qemu+ssh://host2/system`).

# %% tags=["parameters"]
# Parameters (papermill -p NAME VALUE): NAME: "KIND" = DEFAULT  # help (the kinds: rbdnb.runbooks.parameters).
# The defaults run against the rbdnb sandbox started with --hosts 2.
conf: "file" = None                 # a cluster's ceph.conf; None: the running sandbox
client: "client" = "admin"          # the cephx client that runs these steps
keyring: "file" = None              # its keyring; None: the one the conf names
libvirt_uri: "uri" = None           # the host the VM starts on; None: the sandbox's first host
dest_uri: "uri" = None              # the host it moves to; None: the fleet's next host (the sandbox's host2)
dry_run: "bool" = False             # show each step's commands and change nothing
timeout: "int[1,3600]" = 30         # seconds a call to the cluster may wait before it is an error
guest_dir: "dir" = None             # where the offline guest is built; None: rbdnb's data dir
pool: "pool" = "libvirt-pool"
pg_num: "int[1,32768]" = 32
libvirt_pool: "pool" = "ceph-libvirt-pool"
user: "client" = "libvirt"          # client.libvirt
keyring_dir: "dir" = None           # where client.libvirt's keyring goes (0600); None: rbdnb's data dir
vm: "domain" = "rbdnb-migrating-vm"
round_trips: "int[1,20]" = 2        # migrations there and back: the VM ends where it began
boot_timeout: "int[10,3600]" = 120

# %%
from rbdnb import guest, virt
from rbdnb.ceph.users import keyring_path
from rbdnb.runbooks import begin

rb, cluster = begin('05-live-migration')
source, dest = virt.other_host(libvirt_uri, dest_uri)
keyring_file = keyring_path(user, keyring_dir)

# %% [markdown]
# ## The pool, the user, and the same secret and rbd pool on both hosts
#
# `virsh secret-define` and `virsh pool-define` on each hypervisor, with one secret UUID; a host that does not answer is shown in its row.

# %%
# %ceph osd pool create {pool} {pg_num}
# %ceph auth get-or-create client.{user} mon 'profile rbd' osd 'profile rbd pool={pool}' mgr 'profile rbd pool={pool}' -o {keyring_file}

# %% tags=["guide-x.8"]
# %virsh pool-define-rbd {libvirt_pool} {pool} --client {user} --host {source} --host {dest}

# %% [markdown]
# ## A VM on the first host
#
# Its disk is a clone of the golden image (rbdnb's offline guest, built once). A run stopped half-way may have left the VM on the other host: it comes back first.

# %%
home = guest.home(guest_dir, dry_run=dry_run)
image = guest.offline_guest(guest_dir, dry_run=dry_run).image
console = home / f'{vm}.console.log'
rb.step(virt.migrate(vm, dest, source, missing_ok=True, dry_run=dry_run))

# %%
# %rbd import {image} {pool}/golden --exist-ok
# %rbd snap create {pool}/golden@base --exist-ok
# %rbd clone {pool}/golden@base {pool}/{vm} --exist-ok

# %%
# %virsh define {vm} --disk {pool}/{vm} --guest {image} --console-log {console} --exist-ok
# %virsh start {vm}
# %virsh console {vm} --disk vda --timeout {boot_timeout}

# %% [markdown]
# ## Live migration, there and back
#
# `virsh migrate --live --persistent --undefinesource VM DEST_URI`, checked first (the destination has the secret, sees the same monitors, is another host). Each move reports the time the guest was paused (downtime), the memory sent and the storage copied (none: the disk is in Ceph); the guest's console at the new host shows it still running, its uptime past the one before.

# %% tags=["guide-x.9"]
moves = virt.round_trips(vm, source, dest, round_trips, dry_run=dry_run)
rb.step(moves)

# %%
# %virsh console {vm} --disk vda --timeout {boot_timeout}

# %% [markdown]
# ## Downtime per migration

# %%
if not dry_run:
    ax = moves.value.plot.bar(x='move', y='downtime_ms', legend=False, rot=0, title=f'{vm}: guest paused per live migration')
    ax.set_ylabel('downtime (ms)')

# %%
rb.summary()
