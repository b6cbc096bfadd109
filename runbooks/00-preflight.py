# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (rbdnb)
#     language: python
#     name: rbdnb
# ---

# %% [markdown]
# # 00 — Preflight
#
# Is the cluster healthy, not full, and new enough? Is libvirt reachable, and can this host run KVM, or will guests run under TCG? Nothing is changed.

# %% tags=["parameters"]
# Parameters (papermill -p NAME VALUE): NAME: "KIND" = DEFAULT  # help (the kinds: rbdnb.runbooks.parameters).
# The defaults run against the rbdnb sandbox.
conf: "file" = None          # a cluster's ceph.conf; None: the running sandbox
client: "client" = "admin"   # the cephx client that runs these steps
keyring: "file" = None       # its keyring; None: the one the conf names
libvirt_uri: "uri" = None    # None: the sandbox's (qemu:///system as root, qemu:///session otherwise)
dry_run: "bool" = False      # show each step's commands and change nothing
timeout: "int[1,3600]" = 30  # seconds a call to the cluster may wait before it is an error


# %%
from rbdnb.runbooks import begin
from rbdnb import virt
rb, cluster = begin('00-preflight')

# %% [markdown]
# ## The cluster
#
# `ceph -s`, `ceph osd dump` (full flags, `require_min_compat_client`), `ceph versions`.

# %%
pre = cluster.health()
rb.note('cluster health', False, pre.status + ('' if pre.ok else ' — see the checks'), ['ceph -s'])
pre.to_frame()

# %% [markdown]
# ## libvirt and KVM

# %%
conn = virt.connect_libvirt(libvirt_uri)
kvm = virt.kvm_usable()
rb.note('libvirt', False, f'{conn.getURI()}: libvirt {conn.getLibVersion()}, '
        f'hypervisor {conn.getType()} {conn.getVersion()}; guests run with '
        f"{'KVM' if kvm else 'TCG (software emulation: KVM does not work here)'}", ['virsh version'])
if conn.getURI() == 'qemu:///session':
    rb.note('libvirt session mode', False, virt.SESSION_LIMITS)

# %%
rb.summary()
