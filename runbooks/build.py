"""Writes the runbooks (``runbooks/*.ipynb``) from the cells below: ``python runbooks/build.py``.

The notebooks are committed without outputs; a test checks that they match this file.
Each has a cell tagged ``parameters`` (papermill) whose defaults run against the sandbox.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

COMMON = '''# Parameters (papermill -p NAME VALUE). The defaults run against the rbdnb sandbox.
conf = None          # a cluster's ceph.conf; None: the running sandbox
client = "admin"     # the cephx client that runs these steps
keyring = None       # its keyring; None: the one the conf names
libvirt_uri = None   # None: the sandbox's (qemu:///system as root, qemu:///session otherwise)
dry_run = False      # show each step's commands and change nothing
timeout = 30         # seconds a call to the cluster may wait before it is an error
'''

GUEST = '''guest_dir = None                      # where the offline guest is built; None: rbdnb's data dir
source_image = None                  # a qcow2/raw VM image; None: build the offline guest
'''


class md(str):
    """A markdown cell (cells starting with '## ' are markdown too)."""


def nb(title: str, intro: str, params: str, cells: list) -> nbformat.NotebookNode:
    notebook = new_notebook(metadata={
        "kernelspec": {"name": "rbdnb", "display_name": "Python 3 (rbdnb)", "language": "python"},
        "language_info": {"name": "python"}})
    notebook.cells.append(new_markdown_cell(f"# {title}\n\n{intro}"))
    notebook.cells.append(new_code_cell(params, metadata={"tags": ["parameters"]}))
    for cell in cells:
        if isinstance(cell, md) or cell.startswith("## "):
            notebook.cells.append(new_markdown_cell(cell))
        else:
            notebook.cells.append(new_code_cell(cell))
    for i, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{i:02d}"
    return notebook


RUNBOOKS = {}

RUNBOOKS["00-preflight"] = nb(
    "00 — Preflight",
    "Is the cluster healthy, not full, and new enough? Is libvirt reachable, and can this host "
    "run KVM, or will guests run under TCG? Nothing is changed.",
    COMMON,
    [
        "from rbdnb.runbooks import begin\nfrom rbdnb import virt\n"
        "rb, cluster = begin('00-preflight', dry_run=dry_run, conf=conf, client=client, "
        "keyring=keyring, timeout=timeout,\n"
        "                    libvirt_uri=libvirt_uri)",
        "## The cluster\n\n`ceph -s`, `ceph osd dump` (full flags, `require_min_compat_client`), "
        "`ceph versions`.",
        "pre = cluster.health()\nrb.note('cluster health', False, pre.status + ('' if pre.ok else "
        "' — see the checks'), ['ceph -s'])\npre.to_frame()",
        "## libvirt and KVM",
        "conn = virt.connect_libvirt(libvirt_uri)\n"
        "kvm = virt.kvm_usable()\n"
        "rb.note('libvirt', False, f'{conn.getURI()}: libvirt {conn.getLibVersion()}, '\n"
        "        f'hypervisor {conn.getType()} {conn.getVersion()}; guests run with '\n"
        "        f\"{'KVM' if kvm else 'TCG (software emulation: KVM does not work here)'}\","
        " ['virsh version'])\n"
        "if conn.getURI() == 'qemu:///session':\n"
        "    rb.note('libvirt session mode', False, virt.SESSION_LIMITS)",
        "rb.summary()",
    ])

RUNBOOKS["01-qemu-rbd"] = nb(
    "01 — QEMU and RBD",
    "The guide's section 1: QEMU reaches the cluster through `rbd:pool/image` names, with the "
    "conf, the client id and a keyring *path* (never a key). Create, resize and inspect an "
    "image with `qemu-img`, then import a VM image into RBD and prove by checksum that the bytes "
    "arrived.",
    COMMON + GUEST + '''pool = "rdb_1"                       # the guide's pool
image = "image3"
size = "1G"
grown_size = "10G"
imported = "vm-image"
''',
    [
        "import rbdnb\nfrom rbdnb import guest, qemu\nfrom rbdnb.runbooks import begin\n"
        "rb, cluster = begin('01-qemu-rbd', dry_run=dry_run, conf=conf, client=client, "
        "keyring=keyring, timeout=timeout,\n"
        "                    libvirt_uri=libvirt_uri, pools=[('pool', pool)],\n"
        "                    images=[('image', f'{pool}/{image}'), ('imported', f'{pool}/{imported}')],\n"
        "                    sizes=[('size', size), ('grown_size', grown_size)],\n"
        "                    paths=[('source_image', source_image)], dirs=[('guest_dir', guest_dir)])",
        "## A pool for the images\n\n`ceph osd pool create` and `rbd pool init`.",
        "rb.step(rbdnb.create_pool(cluster, pool, exist_ok=True, dry_run=dry_run))",
        "## qemu-img create, resize, info on rbd:\n\n"
        "`qemu-img create -f raw rbd:rdb_1/image3 1G`, then grow it to 10G.",
        "target = f'rbd:{pool}/{image}'\n"
        "if dry_run or not rbdnb.image_names(cluster, pool).count(image):\n"
        "    rb.step(qemu.create(target, size, cluster, dry_run=dry_run))\n"
        "else:\n"
        "    rb.note(f'qemu-img create {target}', False, 'unchanged: the image exists')",
        "if not dry_run and rbdnb.image_info(cluster, f'{pool}/{image}').size == "
        "rbdnb.parse_size(grown_size):\n"
        "    rb.note(f'qemu-img resize {target}', False, f'unchanged: already {grown_size}')\n"
        "else:\n"
        "    rb.step(qemu.resize(target, grown_size, cluster, dry_run=dry_run))",
        "import pandas as pd\n"
        "info = {} if dry_run else qemu.info(target, cluster)\n"
        "pd.Series({k: info.get(k) for k in ('virtual-size', 'format', 'cluster-size')}, "
        "name=target).to_frame()",
        "## Import a VM image\n\nThe guide downloads a CentOS cloud image; offline, rbdnb builds "
        "a small guest from this host's kernel and busybox (`rbdnb guest build`). Pass "
        "`source_image` to import your own. `qemu-img convert -f qcow2 -O raw ... rbd:...`",
        "boot = guest.offline_guest(guest_dir, dry_run=dry_run) if source_image is None else None\n"
        "source = source_image or boot.image\n"
        "rb.step(rbdnb.import_image(cluster, source, f'{pool}/{imported}', exist_ok=True, "
        "dry_run=dry_run))",
        "## Check it\n\n`qemu-img info` says raw, and the image holds the source's bytes.",
        "if not dry_run:\n"
        "    check = rbdnb.verify_image(cluster, source, f'{pool}/{imported}')\n"
        "    assert check.identical, check\n"
        "    rb.note('verify by checksum', False, str(check))\n"
        "    display(pd.Series(qemu.info(f'rbd:{pool}/{imported}', cluster)).to_frame('info'))",
        "rb.summary()",
    ])

RUNBOOKS["02-libvirt-rbd"] = nb(
    "02 — libvirt with Ceph RBD",
    "The guide's section 2: a pool and a least-privilege `client.libvirt`, a libvirt secret "
    "holding its key (set through libvirt's API, never shown), a libvirt `rbd` storage pool, a VM "
    "whose disk lives in it, its XML, the `virsh edit` step that turns a file disk into an RBD "
    "network disk, and a further RBD disk attached to the running VM and detached again.",
    COMMON + GUEST + '''pool = "libvirt-pool"
pg_num = 32                          # the guide uses 128 on a real cluster
libvirt_pool = "ceph-libvirt-pool"
user = "libvirt"                     # client.libvirt
keyring_dir = None                   # where client.libvirt's keyring goes (0600); None: rbdnb's data dir
vm = "rbdnb-guide-vm"
edited_vm = "rbdnb-guide-edited"
os_data = "os-data"
os_data_size = "10G"
boot_timeout = 120
''',
    [
        "import os\nimport rbdnb\nfrom rbdnb import guest, virt\nfrom rbdnb.ceph import users\n"
        "from rbdnb.runbooks import begin\n"
        "rb, cluster = begin('02-libvirt-rbd', dry_run=dry_run, conf=conf, client=client, "
        "keyring=keyring, timeout=timeout,\n"
        "                    libvirt_uri=libvirt_uri, pools=[('pool', pool), ('libvirt_pool', libvirt_pool)],\n"
        "                    ranges=[('pg_num', pg_num, 1, 32768), ('boot_timeout', boot_timeout, 10, 3600)],\n"
        "                    clients=[('user', user)], domains=[('vm', vm), ('edited_vm', edited_vm)],\n"
        "                    images=[('os_data', f'{pool}/{os_data}'), ('vm', f'{pool}/{vm}'),"
        " ('edited_vm', f'{pool}/{edited_vm}')],\n"
        "                    sizes=[('os_data_size', os_data_size)], paths=[('source_image', source_image)],\n"
        "                    dirs=[('guest_dir', guest_dir), ('keyring_dir', keyring_dir)])\n"
        "conn = virt.connect_libvirt(libvirt_uri)",
        "## On a monitor node: the pool and the user\n\n"
        "`ceph osd pool create libvirt-pool 128 128`, `rbd pool init libvirt-pool`, "
        "`qemu-img create -f rbd rbd:libvirt-pool/os-data 10G`.",
        "rb.step(rbdnb.create_pool(cluster, pool, pg_num, exist_ok=True, dry_run=dry_run))\n"
        "rb.step(rbdnb.create_image(cluster, f'{pool}/{os_data}', os_data_size, exist_ok=True, "
        "dry_run=dry_run))",
        md("`ceph auth get-or-create client.libvirt` with today's least-privilege caps "
        "(`profile rbd`, on this pool only), and its keyring file (mode 0600)."),
        "rb.step(rbdnb.create_user(cluster, user, [pool], exist_ok=True, dry_run=dry_run))\n"
        "rb.step(rbdnb.write_keyring(cluster, user, users.keyring_path(user, keyring_dir), "
        "dry_run=dry_run))",
        "## On the libvirt host: the secret and the storage pool\n\n"
        "A secret of usage type `ceph` named `client.libvirt secret`; its value is the key, set "
        "through libvirt's API (the guide's `virsh secret-set-value --base64 KEY` puts the key on "
        "a command line, which rbdnb never does).",
        "secret = rb.step(virt.define_secret(conn, cluster, user, dry_run=dry_run))\n"
        "secret_uuid = None if dry_run else secret.value",
        md("The `rbd` storage pool `ceph-libvirt-pool`: source `libvirt-pool`, the monitors, auth "
        "`libvirt` with the secret. Defined, started, autostarted."),
        "if not dry_run:\n"
        "    rb.step(virt.ensure_rbd_pool(conn, libvirt_pool, pool, cluster, user, secret_uuid))\n"
        "    display(virt.list_volumes(conn, libvirt_pool))",
        "## A VM whose disk is in that pool\n\n"
        "The guide runs `virt-install --disk pool=ceph-libvirt-pool`; here the VM's disk is a "
        "copy-on-write clone of the imported guest, made in the pool.",
        "home = guest.home(guest_dir, dry_run=dry_run)  # guests, disks and console logs\n"
        "boot = guest.offline_guest(guest_dir, dry_run=dry_run) if source_image is None else None\n"
        "image = source_image or boot.image\n"
        "rb.step(rbdnb.import_image(cluster, image, f'{pool}/golden', exist_ok=True, "
        "dry_run=dry_run))\n"
        "rb.step(rbdnb.create_snapshot(cluster, f'{pool}/golden@base', exist_ok=True, "
        "dry_run=dry_run))\n"
        "rb.step(rbdnb.clone(cluster, f'{pool}/golden@base', f'{pool}/{vm}', exist_ok=True, "
        "dry_run=dry_run))",
        "console = os.path.join(home, f'{vm}.console.log')\n"
        "# A dry run has no secret yet: its plan shows the disk with a placeholder UUID.\n"
        "auth = virt.rbd_auth(cluster, user, '00000000-0000-0000-0000-000000000000') if dry_run "
        "else None\n"
        "rb.step(virt.define_vm(conn, vm, [f'{pool}/{vm}'], boot=boot, console_log=console, "
        "exist_ok=True, auth=auth, cluster=cluster, dry_run=dry_run))\n"
        "if not dry_run:\n"
        "    rb.step(virt.start_vm(conn, vm))",
        "if not dry_run and boot is not None:\n"
        "    seen = guest.wait_console(console, lambda s: s['booted'] and 'vda' in s['disks'],\n"
        "                              timeout=boot_timeout)\n"
        "    rb.note('the guest booted from RBD', False, f\"console shows {guest.MARKER}; vda \"\n"
        "            f\"sha256 {seen['disks']['vda']['sha256'][:16]}…\", ['virsh console " "' + vm])",
        "## The VM's XML\n\n`virsh dumpxml` — the disk is a `network` disk, protocol `rbd`, "
        "with the monitors and the cephx auth.",
        "from IPython.display import Markdown\n"
        "if not dry_run:\n"
        "    display(Markdown('```xml\\n' + virt.dump_xml(conn, vm) + '\\n```'))",
        "## The `virsh edit` step: a file disk becomes an RBD disk\n\n"
        "A VM defined with a file-backed disk (as `virt-install` makes), then its `vda` replaced "
        "by `libvirt-pool/os-data`; the rest of its XML stays as it was.",
        "import shutil\n"
        "if not dry_run:\n"
        "    if edited_vm not in [d.name() for d in conn.listAllDomains()]:\n"
        "        disk_file = os.path.join(home, f'{edited_vm}.qcow2')\n"
        "        shutil.copyfile(image, disk_file); os.chmod(disk_file, 0o644)\n"
        "        conn.defineXML(virt.domain_xml(edited_vm, [virt.file_disk(disk_file)], boot=boot,\n"
        "                                       console_log=os.path.join(home, "
        "f'{edited_vm}.console.log')))\n"
        "        rb.note(f'define {edited_vm} with a file disk', True, 'defined', ['virt-install ...'])\n"
        "    rb.step(virt.replace_disk(conn, edited_vm, 'vda', f'{pool}/{os_data}', cluster=cluster))\n"
        "    display(virt.list_disks(conn, edited_vm, inactive=True))",
        "## Attach a further RBD disk to the running VM, then detach it\n\n"
        "The host writes a MiB into a new image with librbd; the guest reports the same checksum "
        "for its new disk; then the disk is detached. The VM ends as it began.",
        "import hashlib\n"
        "from rbdnb.ceph.images import open_image\nfrom rbdnb.base.specs import parse_spec\n"
        "if not dry_run and boot is not None:\n"
        "    rb.step(rbdnb.create_image(cluster, f'{pool}/{vm}-data', '32M', exist_ok=True))\n"
        "    payload = hashlib.sha256(vm.encode()).digest() * (1024 * 1024 // 32)\n"
        "    with open_image(cluster, parse_spec(f'{pool}/{vm}-data')) as img:\n"
        "        img.write(payload, 0)\n"
        "    want = hashlib.sha256(payload).hexdigest()\n"
        "    attach = virt.attach_rbd(conn, vm, f'{pool}/{vm}-data', target='vdb', cluster=cluster)\n"
        "    seen = guest.wait_console(console, lambda s: s['disks'].get('vdb', {}).get('sha256') == want,\n"
        "                              timeout=boot_timeout)\n"
        "    detach = virt.detach_rbd(conn, vm, f'{pool}/{vm}-data')\n"
        "    rb.note('attach vdb, see it in the guest, detach it', False,\n"
        "            f'the guest saw vdb with sha256 {want[:16]}…; detached again: the VM is as '\n"
        "            f'before', attach.plan.lines + detach.plan.lines)",
        "rb.summary()",
    ])

RUNBOOKS["03-golden-image-clones"] = nb(
    "03 — Golden image, many clones",
    "Snapshot a golden image once, clone many VM disks from it at once (copy-on-write: "
    "milliseconds each, no data copied), boot several VMs, flatten one. Then measure a clone "
    "against a full copy and plot it.",
    COMMON + GUEST + '''pool = "golden-pool"
user = "golden"                      # client.golden: least privilege on the pool, for libvirt
golden = "golden"
snapshot = "base"
vm_prefix = "vm-"
vm_count = 10
boot_count = 2
measure_count = 20
boot_timeout = 120
''',
    [
        "import os, time\nimport pandas as pd\nimport rbdnb\nfrom rbdnb import guest, virt\n"
        "from rbdnb.runbooks import begin\n"
        "rb, cluster = begin('03-golden-image-clones', dry_run=dry_run, conf=conf, client=client,"
        " keyring=keyring, timeout=timeout,\n"
        "                    libvirt_uri=libvirt_uri, pools=[('pool', pool)], clients=[('user', user)],\n"
        "                    snapshots=[('snapshot', f'{pool}/{golden}@{snapshot}')],\n"
        "                    names=[('vm_prefix', vm_prefix)],\n"
        "                    images=[('vm_prefix', f'{pool}/{vm_prefix}{vm_count:03d}')],\n"
        "                    domains=[('vm_prefix', f'rbdnb-{pool}-{vm_prefix}{vm_count:03d}')],\n"
        "                    counts=[('vm_count', vm_count), ('measure_count', measure_count)],\n"
        "                    ranges=[('boot_count', boot_count, 0, vm_count), ('boot_timeout', boot_timeout, 10, 3600)],\n"
        "                    paths=[('source_image', source_image)], dirs=[('guest_dir', guest_dir)])\n"
        "conn = virt.connect_libvirt(libvirt_uri)",
        "## The golden image and its snapshot",
        "rb.step(rbdnb.create_pool(cluster, pool, exist_ok=True, dry_run=dry_run))\n"
        "boot = guest.offline_guest(guest_dir, dry_run=dry_run) if source_image is None else None\n"
        "rb.step(rbdnb.import_image(cluster, source_image or boot.image, f'{pool}/{golden}', "
        "exist_ok=True, dry_run=dry_run))\n"
        "rb.step(rbdnb.create_snapshot(cluster, f'{pool}/{golden}@{snapshot}', exist_ok=True, "
        "dry_run=dry_run))",
        "## Clone the VM disks, all at once",
        "clones = rb.step(rbdnb.clone_many(cluster, f'{pool}/{golden}@{snapshot}',\n"
        "                                  f'{pool}/{vm_prefix}{{i:03d}}', count=vm_count, "
        "exist_ok=True, dry_run=dry_run))\n"
        "None if dry_run else clones.value",
        "## Boot some of them\n\nEach VM boots from its own clone; the console shows the guest's "
        "marker and the checksum of the disk it sees.",
        "if not dry_run and boot is not None:\n"
        "    rb.step(rbdnb.create_user(cluster, user, [pool], exist_ok=True))\n"
        "    secret = virt.ensure_secret(conn, cluster, user)\n"
        "    rb.step(virt.ensure_rbd_pool(conn, f'ceph-{pool}', pool, cluster, user, secret))\n"
        "    logs = {}\n"
        "    for i in range(1, boot_count + 1):\n"
        "        name = f'rbdnb-{pool}-{vm_prefix}{i:03d}'\n"
        "        logs[name] = os.path.join(guest.home(guest_dir), f'{name}.console.log')\n"
        "        rb.step(virt.define_vm(conn, name, [f'{pool}/{vm_prefix}{i:03d}'], boot=boot,\n"
        "                               console_log=logs[name], exist_ok=True, cluster=cluster))\n"
        "        rb.step(virt.start_vm(conn, name))\n"
        "    rows = []\n"
        "    for name, log in logs.items():\n"
        "        seen = guest.wait_console(log, lambda s: s['booted'] and 'vda' in s['disks'],\n"
        "                                  timeout=boot_timeout)\n"
        "        rows.append({'vm': name, 'booted': seen['booted'], 'vda sha256': "
        "seen['disks'].get('vda', {}).get('sha256', '')[:16]})\n"
        "    display(pd.DataFrame(rows))\n"
        "    assert all(r['booted'] for r in rows), rows",
        "## Flatten one\n\nA flattened clone holds its own copy of the data and no longer depends "
        "on the snapshot.",
        "flat = f'{pool}/{vm_prefix}flat'\n"
        "if not dry_run and flat.split('/')[1] in rbdnb.image_names(cluster, pool) \\\n"
        "        and rbdnb.image_info(cluster, flat).parent is None:\n"
        "    rb.note(f'clone and flatten {flat}', False, 'unchanged: already a flattened clone')\n"
        "else:\n"
        "    rb.step(rbdnb.clone(cluster, f'{pool}/{golden}@{snapshot}', flat, exist_ok=True, "
        "dry_run=dry_run))\n"
        "    rb.step(rbdnb.flatten(cluster, flat, dry_run=dry_run))",
        "## Clone time against full-copy time\n\nThrowaway images, removed afterwards: "
        "`measure_count` clones at once, and full copies (`rbd cp`) of the golden image.",
        "if not dry_run:\n"
        "    t0 = time.perf_counter()\n"
        "    tmp = rbdnb.clone_many(cluster, f'{pool}/{golden}@{snapshot}', f'{pool}/measure-{{i}}',"
        " count=measure_count)\n"
        "    clone_each = (time.perf_counter() - t0) / measure_count\n"
        "    copies = []\n"
        "    for i in range(2):\n"
        "        t0 = time.perf_counter()\n"
        "        rbdnb.copy_image(cluster, f'{pool}/{golden}', f'{pool}/fullcopy-{i}')\n"
        "        copies.append(time.perf_counter() - t0)\n"
        "    for name in list(tmp.value.name) + [f'{pool}/fullcopy-{i}' for i in range(2)]:\n"
        "        rbdnb.remove_image(cluster, name, confirm=True)\n"
        "    timing = pd.DataFrame({'seconds per disk': [clone_each, sum(copies) / len(copies)]},\n"
        "                          index=['copy-on-write clone', 'full copy (rbd cp)'])\n"
        "    rb.note('measure clone vs full copy', False, f'a clone took {clone_each * 1000:.1f} "
        "ms, a full copy {timing.iloc[1, 0]:.2f} s; temporary images removed')\n"
        "    ax = timing.plot.barh(legend=False, logx=True, title='Time to make one VM disk')\n"
        "    ax.set_xlabel('seconds (log scale)')\n"
        "    display(timing)",
        "rb.summary()",
    ])

RUNBOOKS["04-benchmark"] = nb(
    "04 — Benchmark the pool",
    "Measure a pool before VMs go on it, and again on a schedule: the same cases with "
    "`rbd bench`, fio's rbd engine and rbdnb's native librbd engine, back to back. "
    "Results are a table (saved as CSV and Parquet) and plots; the native engine's figures "
    "are compared with `rbd bench`'s from the same run.",
    COMMON + '''pool = "bench-pool"
image = "bench"
image_size = "2G"                    # reads and random I/O spread over all of it
engines = ["native", "rbd", "fio"]
io_types = ["randwrite", "randread", "write"]
io_sizes = ["4K", "64K", "4M"]
queue_depths = [1, 16]
total = "64M"                        # I/O per run
results_dir = "runs/bench"           # results.csv and results.parquet, stamped per run
''',
    [
        "import os, datetime\nimport ipywidgets as widgets\nimport rbdnb\nfrom rbdnb import bench\n"
        "from rbdnb.runbooks import begin\n"
        "matrix_params = dict(engines=engines, io_types=io_types, io_sizes=io_sizes, "
        "queue_depths=queue_depths, total=total)\n"
        "rb, cluster = begin('04-benchmark', dry_run=dry_run, conf=conf, client=client, "
        "keyring=keyring, timeout=timeout,\n"
        "                    libvirt_uri=libvirt_uri, pools=[('pool', pool)], images=[('image', f'{pool}/{image}')],\n"
        "                    sizes=[('image_size', image_size)], dirs=[('results_dir', results_dir)],\n"
        "                    bench=matrix_params)",
        "## The image to measure\n\nA dedicated image, created once; read tests read data, "
        "so it is pre-filled once (sequential 4M writes over all of it).",
        "rb.step(rbdnb.create_pool(cluster, pool, exist_ok=True, dry_run=dry_run))\n"
        "rb.step(rbdnb.create_image(cluster, f'{pool}/{image}', image_size, exist_ok=True, "
        "dry_run=dry_run))\n"
        "if dry_run:\n"
        "    rb.step(bench.prefill(cluster, f'{pool}/{image}', dry_run=True))\n"
        "else:\n"
        "    filled = bench.prefill(cluster, f'{pool}/{image}')\n"
        "    rb.note(f'pre-fill {pool}/{image}', False, f'{filled} (a benchmark image: "
        "its data does not matter)')",
        "## Run the matrix\n\nEvery case runs the engines back to back, so they see the "
        "same cluster. The commands of the external engines are listed first.",
        "plan = bench.matrix(cluster, f'{pool}/{image}', **matrix_params, dry_run=True,\n"
        "                    image_size=image_size if dry_run else None)\n"
        "if dry_run:\n"
        "    rb.step(plan)\n"
        "else:\n"
        "    bar = widgets.IntProgress(min=0, max=bench.validate(**matrix_params), "
        "description='runs')\n"
        "    display(bar)\n"
        "    def progress(done, all_):\n"
        "        bar.max, bar.value = all_, done\n"
        "    results = bench.matrix(cluster, f'{pool}/{image}', **matrix_params, "
        "progress=progress)\n"
        "    rb.note('benchmark matrix', False, f'{len(results)} runs on {pool}/{image} "
        "(a measurement: nothing configured changed)', plan.lines[:3])\n"
        "    display(results[['engine', 'io_type', 'io_size', 'queue_depth', 'iops', 'mib_s', "
        "'lat_mean_us', 'lat_p99_us']].round(1))",
        "## Save the results\n\nOne file per run, stamped, so a scheduled runbook builds a "
        "history.",
        "if not dry_run:\n"
        "    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')\n"
        "    saved = [bench.save(results, os.path.join(results_dir, f'bench-{stamp}.{ext}')) "
        "for ext in ('csv', 'parquet')]\n"
        "    rb.note('save results', False, ', '.join(saved))",
        "## Throughput and IOPS against I/O size\n\nOne line per engine (and queue depth).",
        "if not dry_run:\n"
        "    for io_type in io_types:\n"
        "        fig = bench.plot(results[results.io_type == io_type], x='io_size')\n"
        "        fig.suptitle(io_type)\n"
        "        fig.tight_layout()",
        "## Against queue depth, and latency",
        "if not dry_run and len(queue_depths) > 1:\n"
        "    for io_type in io_types:\n"
        "        fig = bench.plot(results[(results.io_type == io_type) & "
        "(results.io_size == results.io_size.iloc[0])], x='queue_depth')\n"
        "        fig.suptitle(f'{io_type}, {results.io_size.iloc[0]}')\n"
        "        fig.tight_layout()",
        "## rbdnb's native engine against `rbd bench`, same run\n\nThe native engine's IOPS "
        "as a fraction of `rbd bench`'s for each case (1.0: as fast).",
        "if not dry_run and 'rbd' in engines and len(engines) > 1:\n"
        "    display(bench.ratios(results, 'rbd', 'iops'))",
        "rb.summary()",
    ])

RUNBOOKS["99-teardown"] = nb(
    "99 — Teardown",
    "Removes what the other runbooks made: their VMs, libvirt pools and secrets, the users and "
    "the pools with all their images. Refuses unless `confirm` is set.",
    COMMON + '''confirm = False                      # set True to really remove everything below
pools = ["rdb_1", "libvirt-pool", "golden-pool", "bench-pool"]
users = ["libvirt", "golden"]
vm_prefix = "rbdnb-"
free_images = []                     # on a full cluster: images to remove first, by free_space
''',
    [
        "import rbdnb\nfrom rbdnb import virt\nfrom rbdnb.runbooks import begin\n"
        "from IPython.core.error import UsageError\n"
        "rb, cluster = begin('99-teardown', dry_run=dry_run, conf=conf, client=client, "
        "keyring=keyring, timeout=timeout,\n"
        "                    libvirt_uri=libvirt_uri, flags=[('confirm', confirm)],\n"
        "                    pools=[('pools', p) for p in pools], clients=[('users', u) for u in users],\n"
        "                    names=[('vm_prefix', vm_prefix)], images=[('free_images', i) for i in free_images])\n"
        "if not confirm and not dry_run:\n"
        "    raise UsageError('bad parameter: teardown removes pools and all their images: run "
        "with -p confirm True')\n"
        "conn = virt.connect_libvirt(libvirt_uri)",
        "## A full cluster first\n\nRemoving a pool is a monitor operation and works on a full "
        "cluster; images named in `free_images` are removed first with `free_space` (deletes "
        "through the full pool, the full ratio raised only if needed, then restored).",
        "if free_images:\n"
        "    rb.step(rbdnb.free_space(cluster, free_images, confirm=confirm, dry_run=dry_run))",
        "## VMs, libvirt pools and secrets",
        "# libvirt is machine-wide: only what uses these Ceph pools on this cluster's monitors.\n"
        "ours = virt.objects_on_cluster(conn, virt.monitor_hosts(cluster), ceph_pools=pools)\n"
        "for name in ours.domains:\n"
        "    if name.startswith(vm_prefix):\n"
        "        rb.step(virt.destroy_vm(conn, name, dry_run=dry_run))\n"
        "        rb.step(virt.undefine_vm(conn, name, dry_run=dry_run))\n"
        "for name in ours.pools:\n"
        "    rb.step(virt.delete_rbd_pool(conn, name, dry_run=dry_run))\n"
        "for uuid in ours.secrets:\n"
        "    rb.step(virt.undefine_secret(conn, uuid, dry_run=dry_run))",
        "## Users and pools",
        "for u in users:\n"
        "    rb.step(rbdnb.delete_user(cluster, u, confirm=True, missing_ok=True, "
        "dry_run=dry_run))\n"
        "for p in pools:\n"
        "    rb.step(rbdnb.delete_pool(cluster, p, confirm=True, missing_ok=True, "
        "dry_run=dry_run))",
        "rb.summary()",
    ])


def write(check: bool = False) -> list[str]:
    """Write every runbook; with ``check``, only report those that differ from this file."""
    stale = []
    for name, notebook in RUNBOOKS.items():
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(notebook) + "\n"
        if not path.exists() or path.read_text() != text:
            stale.append(name)
            if not check:
                path.write_text(text)
    return stale


if __name__ == "__main__":
    stale = write(check="--check" in sys.argv)
    print("\n".join(stale) if stale else "runbooks are up to date")
    sys.exit(1 if stale and "--check" in sys.argv else 0)
