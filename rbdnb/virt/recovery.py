"""Disaster recovery of a VM whose disks are mirrored to a second site: the drills.

Two sites, each a Ceph cluster with a hypervisor; a pool mirrored between them (snapshot
mode, :mod:`rbdnb.ceph.mirror`). :class:`Sites` puts a VM at site a, its boot disk and a
data disk mirrored to site b, and runs what an operator rehearses:

* **planned failover** -- stop the VM at a, demote, let b take the last snapshot, promote b,
  boot the VM at b: nothing is lost;
* **failback** -- the same the other way, after writing at b;
* **unplanned failover** -- site a is lost with writes made after the last mirror snapshot:
  force-promote b and boot there; those writes are lost (the RPO), and the time to a booted
  VM is the RTO; then the way back: demote a, resync it from b, fail back.

Every step is checked by checksum of the images at both sites. Each drill's figures (RTO,
RPO in bytes and seconds, sync time) are a row of :attr:`Sites.drills`.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field

from ..base.plan import Plan, Result, merged
from ..base.specs import check_name, parse_client, parse_spec
from ..ceph import mirror
from ..ceph.cluster import Cluster
from ..ceph.images import create_image, image_exists, open_image
from ..ceph.pools import create_pool
from ..ceph.transfer import checksum_image, import_image
from ..ceph.users import create_user
from ..errors import InvalidArgument, RbdnbError
from .connection import close_quietly, connect_libvirt, find
from .domains import define_vm, destroy_vm, start_vm, wait_guest
from .guest import GuestBoot
from .pools import ensure_rbd_pool
from .secrets import define_secret

DATA_SIZE = 16 * 2**20


@dataclass
class Sites:
    """Site a (``cluster`` and the hypervisor ``uri_a``) and site b (``peer``, ``uri_b``),
    mirroring ``pool``; the VM ``vm`` with its boot disk ``POOL/VM`` and data disk
    ``POOL/VM-data``, used by ``client.USER`` (at each site its own key, its own libvirt
    secret on its own hypervisor)."""

    cluster: Cluster
    peer: Cluster
    uri_a: str
    uri_b: str
    pool: str
    vm: str
    user: str = "libvirt"
    libvirt_pool: str = "dr-pool"
    pg_num: int = 32
    boot_timeout: float = 120
    sync_timeout: float = 120
    drills: list[dict] = field(default_factory=list)

    def __post_init__(self):
        from .connection import check_uri
        from .xml import check_domain_name
        check_name(self.pool, "pool")
        check_name(self.libvirt_pool, "libvirt pool")
        check_domain_name(self.vm)
        self.user = parse_client(self.user)
        self.uri_a, self.uri_b = check_uri(self.uri_a), check_uri(self.uri_b)
        if self.uri_a == self.uri_b:
            raise InvalidArgument(f"both sites' VMs would run on {self.uri_a}: give site b a "
                                  f"hypervisor of its own (rbdnb sandbox up --hosts 2 --sites 2,"
                                  f" or peer_uri)")
        if self.cluster.fsid == self.peer.fsid:
            raise InvalidArgument(f"site a and site b are the same cluster ({self.cluster.fsid})"
                                  f": give site b's conf (rbdnb sandbox up --sites 2)")

    # -- names -------------------------------------------------------------------------------
    @property
    def disks(self) -> list[str]:
        return [f"{self.pool}/{self.vm}", f"{self.pool}/{self.vm}-data"]

    def site(self, name: str) -> tuple[Cluster, str]:
        return (self.cluster, self.uri_a) if name == "a" else (self.peer, self.uri_b)

    def console(self, directory, name: str) -> str:
        return os.path.join(str(directory), f"{self.vm}.console.site-{name}.log")

    # -- setting up ----------------------------------------------------------------------------
    def prepare(self, *, dry_run: bool = False) -> Result | Plan:
        """At both sites: the pool (mirroring images), the user, the libvirt secret and rbd
        pool on that site's hypervisor; the sites peered. Idempotent."""
        steps = []
        for name in ("a", "b"):
            cluster, uri = self.site(name)
            steps += [create_pool(cluster, self.pool, self.pg_num, exist_ok=True,
                                  dry_run=dry_run),
                      mirror.enable_pool(cluster, self.pool, name if dry_run else
                                         mirror.site_name(cluster, name), dry_run=dry_run),
                      create_user(cluster, self.user, [self.pool], exist_ok=True,
                                  dry_run=dry_run)]
            if not dry_run:
                conn = connect_libvirt(uri)
                try:
                    secret = define_secret(conn, cluster, self.user)
                    steps += [secret, ensure_rbd_pool(conn, self.libvirt_pool, self.pool,
                                                      cluster, self.user, secret.value)]
                finally:
                    close_quietly(conn)
        steps.append(mirror.bootstrap_peers(self.cluster, self.peer, self.pool,
                                            dry_run=dry_run))
        return merged(f"two sites mirroring pool {self.pool}", *steps)

    def place_vm(self, image: str, boot: GuestBoot | None, directory, *,
                 dry_run: bool = False) -> Result | Plan:
        """The VM at site a: its boot disk imported from ``image``, a data disk, both
        mirrored to site b; defined at both sites' hypervisors (each on its own cluster),
        running at a. Idempotent: a VM that a killed drill left at b is left for
        :meth:`fail_back`."""
        boot_disk, data = self.disks
        steps = [import_image(self.cluster, image, boot_disk, exist_ok=True, dry_run=dry_run),
                 create_image(self.cluster, data, DATA_SIZE, exist_ok=True, dry_run=dry_run)]
        if dry_run:
            steps += [mirror.enable_image(self.cluster, d, dry_run=True) for d in self.disks]
            return merged(f"VM {self.vm} at site a, its disks mirrored", *steps)
        where = self.primary_site()
        src, _ = self.site(where)
        steps += [mirror.enable_image(src, d) for d in self.disks]
        for name in ("a", "b"):
            cluster, uri = self.site(name)
            if name != where:
                self.sync(src_name=where)
            conn = connect_libvirt(uri)
            try:
                steps.append(define_vm(conn, self.vm, self.disks, boot=boot, cluster=cluster,
                                       console_log=self.console(directory, name),
                                       exist_ok=True))
                if name == where:
                    steps.append(start_vm(conn, self.vm))
                    wait_guest(conn, self.vm, timeout=self.boot_timeout)
            finally:
                close_quietly(conn)
        return merged(f"VM {self.vm} at site {where}, its disks mirrored", *steps)

    # -- reading the sites ---------------------------------------------------------------------
    def _primary_at(self, name: str) -> bool:
        """Whether every disk of the VM is primary at site ``name``."""
        cluster, _ = self.site(name)
        return all(image_exists(cluster, parse_spec(d)) and mirror.status(cluster, d)["primary"]
                   for d in self.disks)

    def _running_at(self, name: str) -> bool:
        import libvirt
        _, uri = self.site(name)
        conn = connect_libvirt(uri)
        try:
            dom = find(conn.lookupByName, self.vm, missing=libvirt.VIR_ERR_NO_DOMAIN)
            return bool(dom is not None and dom.isActive())
        finally:
            close_quietly(conn)

    def _split(self) -> bool:
        """Both sites primary: a forced promotion left the other side diverged."""
        return self._primary_at("a") and self._primary_at("b")

    def primary_site(self) -> str:
        """Where the VM's data is authoritative now: the site whose disks are primary (a when
        neither: never mirrored). When both are (after a forced promotion), the site where the
        VM runs; refused when it runs at neither or both, since then only the operator knows
        which copy to keep."""
        primary = [n for n in ("a", "b") if self._primary_at(n)]
        if len(primary) < 2:
            return primary[0] if primary else "a"
        running = [n for n in ("a", "b") if self._running_at(n)]
        if len(running) != 1:
            raise RbdnbError(f"the disks of VM {self.vm} are primary at both sites and the VM "
                             f"runs at {'both' if running else 'neither'}: demote the copy to "
                             f"drop (rbd mirror image demote, then resync) and run again")
        return running[0]

    def checksums(self) -> dict:
        """{site: {disk: sha256}} of the VM's disks at both sites."""
        out = {}
        for name in ("a", "b"):
            cluster, _ = self.site(name)
            out[name] = {d: checksum_image(cluster, d) if image_exists(cluster, parse_spec(d))
                         else None for d in self.disks}
        return out

    def sync(self, src_name: str = "a") -> float:
        """A mirror snapshot of each disk at ``src_name``, then wait until the other site
        holds it; the seconds it took."""
        src = self.site(src_name)[0]
        dst = self.site("b" if src_name == "a" else "a")[0]
        t0 = time.monotonic()
        for disk in self.disks:
            mirror.create_snapshot(src, disk)
        for disk in self.disks:
            mirror.wait_synced(src, dst, disk, timeout=self.sync_timeout)
        return time.monotonic() - t0

    def _equal_or_fail(self, what: str) -> dict:
        sums = self.checksums()
        if sums["a"] != sums["b"]:
            differ = [d for d in self.disks if sums["a"][d] != sums["b"][d]]
            raise RbdnbError(f"{what}: {', '.join(differ)} differ between the sites")
        return sums

    # -- the drills ---------------------------------------------------------------------------
    def _stop(self, name: str) -> None:
        _, uri = self.site(name)
        conn = connect_libvirt(uri)
        try:
            destroy_vm(conn, self.vm)
        finally:
            close_quietly(conn)

    def _boot(self, name: str) -> None:
        _, uri = self.site(name)
        conn = connect_libvirt(uri)
        try:
            start_vm(conn, self.vm)
            wait_guest(conn, self.vm, timeout=self.boot_timeout)
        finally:
            close_quietly(conn)

    def write(self, name: str, mib: int = 4, offset: int = 0) -> str:
        """Write ``mib`` MiB of fresh bytes into the data disk at site ``name`` (where it is
        primary); their sha256."""
        payload = os.urandom(mib * 2**20)
        cluster, _ = self.site(name)
        with open_image(cluster, parse_spec(self.disks[1])) as image:
            image.write(payload, offset)
            image.flush()
        return hashlib.sha256(payload).hexdigest()

    def failover(self, *, planned: bool = True, write_mib: int = 4,
                 dry_run: bool = False) -> Result | Plan:
        """Move the VM from the site where it runs to the other. Planned: nothing lost.
        Unplanned: ``write_mib`` MiB written at the old site after its last mirror snapshot
        are lost (the RPO, checked by checksum); the RTO is the time from the decision to a
        booted VM at the new site."""
        from ..base.units import check_int
        check_int(write_mib, "write_mib", 1, DATA_SIZE // 2**20 - 1)
        kind = "planned" if planned else "unplanned"
        plan = Plan(f"{kind} failover of VM {self.vm}")
        for disk in self.disks:
            plan.commands += mirror.failover(self.cluster, self.peer, disk, planned=planned,
                                             dry_run=True).commands
        plan.add("virsh", "-c", self.uri_b, "start", self.vm)
        if dry_run:
            return plan
        if self._split():
            raise RbdnbError(f"the disks of VM {self.vm} are primary at both sites (an earlier "
                             f"unplanned failover): fail back first, which resyncs the copy "
                             f"that diverged")
        old = self.primary_site()
        new = "b" if old == "a" else "a"
        src, dst = self.site(old)[0], self.site(new)[0]
        sync_s = self.sync(old)
        before = self._equal_or_fail(f"before the {kind} failover")
        synced_at = time.monotonic()
        lost = 0
        if not planned:  # writes the other site never gets: the old site is "lost" now
            self.write(old, write_mib, offset=DATA_SIZE - write_mib * 2**20)
            lost = write_mib * 2**20
        t0 = time.monotonic()
        self._stop(old)
        for disk in self.disks:
            mirror.failover(src, dst, disk, planned=planned, timeout=self.sync_timeout)
        self._boot(new)
        rto = time.monotonic() - t0
        rpo_s = t0 - synced_at
        after = self.checksums()
        # What the new site holds is what the old one held at its last mirror snapshot.
        if after[new] != before[new]:
            raise RbdnbError(f"{kind} failover: the disks at site {new} are not what site {old} "
                             f"held at its last mirror snapshot")
        if not planned and after[old] == after[new]:
            raise RbdnbError("unplanned failover: the writes after the last mirror snapshot "
                             "are not where the test put them")
        row = {"drill": f"{kind} failover {old}→{new}", "rto_s": round(rto, 2),
               "rpo_bytes": lost, "rpo_s": round(rpo_s, 2) if not planned else 0.0,
               "sync_s": round(sync_s, 2), "sites_equal_after": after["a"] == after["b"]}
        self.drills.append(row)
        what = ("nothing lost (checksums equal at both sites)" if planned else
                f"{write_mib} MiB written at site {old} after its last mirror snapshot lost, "
                f"as expected (RPO); site {new} holds that snapshot's data")
        return Result(plan.action, False, f"VM {self.vm} booted at site {new} in {rto:.1f} s "
                      f"(RTO); {what}", plan, value=row)

    def fail_back(self, *, write_mib: int = 4, dry_run: bool = False) -> Result | Plan:
        """Bring the VM back to site a from site b, after writing ``write_mib`` MiB there.
        After an unplanned failover site a's copy has diverged: it is demoted and resynced
        from b first. Checked by checksum: a ends with b's data."""
        plan = Plan(f"fail VM {self.vm} back to site a")
        plan.commands += mirror.demote(self.cluster, self.disks[0], dry_run=True).commands
        plan.commands += mirror.resync(self.cluster, self.disks[0], dry_run=True).commands
        plan.commands += mirror.failover(self.peer, self.cluster, self.disks[0],
                                         dry_run=True).commands
        plan.add("virsh", "-c", self.uri_a, "start", self.vm)
        if dry_run:
            return plan
        t0 = time.monotonic()
        where, split = self.primary_site(), self._split()
        if where == "a":
            if split:  # a forced promotion at a left b diverged: b is copied again from a
                for disk in self.disks:
                    mirror.demote(self.peer, disk)
                    mirror.resync(self.peer, disk)
                self.sync("a")
                self._equal_or_fail("after resyncing site b")
            if not self._running_at("a"):
                self._boot("a")
            elif not split:
                return Result(plan.action, False, "unchanged: the VM runs at site a", plan)
            return Result(plan.action, False, f"VM {self.vm} runs at site a"
                          + ("; site b was resynced from a" if split else ""), plan)
        resynced = False
        if split:  # both primary, the VM at b: a forced promotion at b left a diverged
            for disk in self.disks:
                mirror.demote(self.cluster, disk)
                mirror.resync(self.cluster, disk)
            resynced = True
        written = self.write("b", write_mib)
        self.sync("b")
        self._equal_or_fail("after the resync" if resynced else "before failing back")
        self._stop("b")
        for disk in self.disks:
            mirror.failover(self.peer, self.cluster, disk, timeout=self.sync_timeout)
        self._boot("a")
        sums = self._equal_or_fail("after failing back")
        took = time.monotonic() - t0
        row = {"drill": "failback b→a" + (" (resync)" if resynced else ""),
               "rto_s": round(took, 2), "rpo_bytes": 0, "rpo_s": 0.0,
               "sync_s": None, "sites_equal_after": True}
        self.drills.append(row)
        return Result(plan.action, False, f"VM {self.vm} back at site a in {took:.1f} s with "
                      f"the {write_mib} MiB written at b (sha256 {written[:12]}…)"
                      + ("; site a was resynced from b first" if resynced else "")
                      + f"; checksums equal ({sums['a'][self.disks[1]][:12]}…)", plan,
                      value=row)

    def frame(self):
        """The drills as a DataFrame: drill, RTO, RPO (bytes, s), sync time, whether both sites held the same bytes after it."""
        import pandas as pd
        return pd.DataFrame(self.drills, columns=["drill", "rto_s", "rpo_bytes", "rpo_s",
                                                  "sync_s", "sites_equal_after"])
