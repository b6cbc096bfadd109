"""Live migration of RBD-backed VMs between libvirt hosts: ``virsh migrate --live``.

The disks live in Ceph, so only the guest's memory moves: :func:`migrate` first checks
that the destination can open every disk as the source does (each disk on RBD, the ceph
secret of the same UUID defined there, no rbd pool of that name there on other monitors),
that it is another host (libvirt refuses a host with the same host UUID) and that it has
no VM of that name; then migrates, and reports libvirt's own job statistics: downtime
(how long the guest was paused), total time, memory sent, storage copied (none).
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from ..base.plan import Plan, Result
from ..errors import DomainExists, DomainNotFound, InvalidArgument, RbdnbError, Timeout
from .connection import check_uri, close_quietly, connect_libvirt, find, translated
from .xml import check_domain_name, disks_of, pool_source

MIGRATION_TIMEOUT = 600.0
ABORT_WAIT = 60.0  # s an aborted migration may take to end before rbdnb reports where the VM is


def host_uuid(conn) -> str:
    """The host UUID libvirt reports for a connection's host (``virsh capabilities``)."""
    with translated("host capabilities"):
        caps = conn.getCapabilities()
    found = ET.fromstring(caps).find("./host/uuid")
    return found.text.strip() if found is not None and found.text else ""


def migration_uri(dest_uri: str) -> str:
    """Where QEMU sends the guest's memory: ``tcp://HOST`` of the destination's libvirt URI,
    ``tcp://127.0.0.1`` for a local one (two libvirt hosts on one machine)."""
    host = urlsplit(dest_uri).hostname
    return f"tcp://{host or '127.0.0.1'}"


_TAGGED_LOG = re.compile(r"^(?P<stem>.*?)(?:\.[0-9a-f]{8})?\.log$")


def console_log_for(path: str, dest_uuid: str) -> str:
    """The console log of a VM on the host ``dest_uuid``: one file per host
    (``vm.console.log`` becomes ``vm.console.1a2b3c4d.log``), since the source's QEMU
    still writes its own while the destination's starts."""
    tag = re.sub(r"[^0-9a-f]", "", dest_uuid.lower())[:8] or "dest"
    m = _TAGGED_LOG.match(path)
    return f"{m['stem']}.{tag}.log" if m else f"{path}.{tag}"


def dest_xml(xml: str, dest_uuid: str) -> str:
    """The domain XML for the destination: the same VM, its console logged per host."""
    root = ET.fromstring(xml)
    for log in root.findall("./devices/serial/log") + root.findall("./devices/console/log"):
        if log.get("file"):
            log.set("file", console_log_for(log.get("file"), dest_uuid))
    return ET.tostring(root, encoding="unicode")


def check_disks(name: str, xml: str, dest_conn, dest_uri: str) -> list[dict]:
    """Refuse, in one line, a VM the destination could not open as the source does: a
    disk not on RBD, a ceph secret the destination lacks, an rbd pool of the disk's
    Ceph pool there on other monitors. The RBD disks, as ``disks_of`` gives them."""
    import libvirt
    rbd = []
    for disk in disks_of(xml):
        element = disk["element"]
        if element.get("device") == "cdrom" and disk["source"] is None:
            continue  # an empty CD-ROM drive has nothing to reach
        if disk["type"] != "network" or disk["protocol"] != "rbd":
            raise InvalidArgument(
                f"VM {name}'s disk {disk['target']} is {disk['type']} {disk['source']}, not "
                f"on RBD: a live migration copies no storage, so every disk must be in Ceph "
                f"(move it there first: %rbd import, then %virsh replace-disk)")
        # <auth> under <disk> (what libvirt writes) or under <source> (also accepted).
        auth = element.find("auth")
        if auth is None:
            auth = element.find("source/auth")
        secret = auth.find("secret") if auth is not None else None
        uuid = secret.get("uuid") if secret is not None else None
        if uuid:
            with translated(f"secret {uuid} on {dest_uri}"):
                found = find(dest_conn.secretLookupByUUIDString, uuid,
                             missing=libvirt.VIR_ERR_NO_SECRET)
            if found is None:
                raise InvalidArgument(
                    f"{dest_uri} has no libvirt secret {uuid}, which VM {name}'s disk "
                    f"{disk['target']} uses: give every host the ceph secret with the same "
                    f"UUID first (rbdnb.virt.apply_fleet, %virsh pool-define-rbd ... --host URI)")
        hosts = {(h.get("name"), int(h.get("port") or 6789))
                 for h in element.findall("./source/host")}
        ceph_pool = (disk["source"] or "").split("/")[0]
        with translated(f"storage pools on {dest_uri}"):
            pools = [pool_source(p.XMLDesc(0)) for p in dest_conn.listAllStoragePools(0)]
        theirs = [p for p in pools if p["type"] == "rbd" and p["name"] == ceph_pool]
        if hosts and theirs and not any(set(p["hosts"]) & hosts for p in theirs):
            raise InvalidArgument(
                f"{dest_uri}'s rbd pools for Ceph pool {ceph_pool} are on other monitors "
                f"({', '.join(f'{h}:{p_}' for p in theirs for h, p_ in p['hosts'])}), not "
                f"VM {name}'s ({', '.join(f'{h}:{p_}' for h, p_ in sorted(hosts))}): it sees "
                f"another cluster")
        rbd.append(disk)
    return rbd


def _guest_console(xml: str) -> str | None:
    """The console log of rbdnb's offline guest (booted from its kernel; it reports its
    uptime there), or None for any other VM."""
    root = ET.fromstring(xml)
    log = root.find("./devices/serial/log")
    if root.find("./os/kernel") is None or log is None:
        return None
    return log.get("file")


def _uptime(console: str | None) -> float | None:
    from .guest import parse_console
    if console is None:
        return None
    try:
        with open(console, errors="replace") as fh:
            return parse_console(fh.read())["uptime"]
    except OSError:
        return None


def _kept_running(console: str | None, before: float | None, timeout: float = 30) -> dict:
    """Whether the guest went on where it was: its console at the new host shows a report
    with an uptime past the one before, and no boot. ``rebooted`` is None if it did not
    report within ``timeout`` s."""
    from ..base.waiting import wait_until
    from .guest import parse_console
    seen = {}

    def reported():
        try:
            with open(console, errors="replace") as fh:
                seen.update(parse_console(fh.read()))
        except OSError:
            return False
        return seen.get("boots") or seen.get("uptime") is not None

    if console is None or before is None or not wait_until(reported, timeout, interval=0.5):
        return {"uptime_before": before, "uptime_after": seen.get("uptime"), "rebooted": None}
    after = seen.get("uptime")
    return {"uptime_before": before, "uptime_after": after,
            "rebooted": bool(seen["boots"]) or after is None or after < before}


def _where_now(name: str, src, dst) -> str:
    """Where a VM is after an aborted migration, resumed at the source if it was left paused
    there."""
    import libvirt
    try:
        there = find(dst.lookupByName, name, missing=libvirt.VIR_ERR_NO_DOMAIN)
        if there is not None and there.isActive():
            return "the VM runs at the destination"
        here = find(src.lookupByName, name, missing=libvirt.VIR_ERR_NO_DOMAIN)
        if here is None or not here.isActive():
            return "the VM runs at neither host: start it where its definition is"
        if here.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            here.resume()
            return "the VM runs at the source again (it was resumed)"
        return "the VM runs at the source"
    except libvirt.libvirtError as exc:
        return f"where the VM is could not be read ({exc.get_error_message()})"


def _plan(name: str, source_uri: str, dest_uri: str, live: bool, uri: str) -> Plan:
    plan = Plan(f"{'live-' if live else ''}migrate VM {name} to {dest_uri}")
    plan.add("virsh", "-c", source_uri, "migrate", *(["--live"] if live else ["--offline"]),
             "--persistent", "--undefinesource", *(["--migrateuri", uri] if live else []),
             name, dest_uri)
    plan.note("the disks stay in Ceph: only the guest's memory moves" if live else
              "the definition moves; the disks stay in Ceph")
    return plan


def migrate(name: str, source_uri: str, dest_uri: str, *, live: bool = True,
            migrate_uri: str | None = None, timeout: float = MIGRATION_TIMEOUT,
            missing_ok: bool = False, dry_run: bool = False) -> Result | Plan:
    """Move VM ``name`` from the libvirt host ``source_uri`` to ``dest_uri``: live (a
    running VM keeps running; ``virsh migrate --live --persistent --undefinesource``) or,
    with ``live=False``, its definition only (``--offline``).

    Checked first, changing nothing if refused: both hosts answer and are different
    hosts, the VM is there (and running, for a live migration) and not at the
    destination, and the destination can open its disks (:func:`check_disks`). A VM that
    already runs at the destination and not at the source is "unchanged" (with
    ``missing_ok``, so is a VM on neither host: a runbook bringing a VM back where a killed
    run left it). The result's
    value has libvirt's job statistics: ``downtime_ms``, ``time_ms``, ``memory_bytes``
    (sent), ``disk_bytes`` (storage copied: 0). The whole migration is bounded by
    ``timeout`` s: then it is aborted (the VM stays at the source) and :class:`Timeout`
    raised. Raises InvalidArgument, DomainNotFound, DomainExists, Timeout, LibvirtError.
    """
    import libvirt
    check_domain_name(name)
    source_uri, dest_uri = check_uri(source_uri), check_uri(dest_uri)
    if migrate_uri is not None:
        check_uri(migrate_uri)
    if source_uri == dest_uri:
        raise InvalidArgument(f"cannot migrate VM {name} from {source_uri} to itself: name "
                              f"another host")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or \
            not 1 <= timeout <= 86400:
        raise InvalidArgument(f"timeout {timeout!r} is not valid: expected 1-86400 s")
    src = connect_libvirt(source_uri)
    try:
        dst = connect_libvirt(dest_uri)
    except BaseException:
        close_quietly(src)
        raise
    try:
        here = find(src.lookupByName, name, missing=libvirt.VIR_ERR_NO_DOMAIN)
        there = find(dst.lookupByName, name, missing=libvirt.VIR_ERR_NO_DOMAIN)
        uri = migrate_uri or migration_uri(dest_uri)
        plan = _plan(name, source_uri, dest_uri, live, uri)
        if here is None:
            # Moved already (a re-run): unchanged only if it is there as asked.
            if there is not None and (there.isActive() or not live):
                return Result(plan.action, False, f"unchanged: VM {name} is at {dest_uri} "
                              f"already{' and runs' if there.isActive() else ''}", plan,
                              value={"vm": name, "source": source_uri, "dest": dest_uri,
                                     "live": live})
            if missing_ok and there is None:
                return Result(plan.action, False, f"unchanged: VM {name} is on neither host",
                              plan, value={"vm": name, "source": source_uri, "dest": dest_uri,
                                           "live": live})
            raise DomainNotFound(f"VM {name} is not defined on {source_uri}")
        if there is not None:
            raise DomainExists(f"VM {name} is defined on {dest_uri} already: undefine it "
                               f"there first (its disks are the same RBD images)")
        if live and not here.isActive():
            raise InvalidArgument(f"VM {name} is not running on {source_uri}: a live "
                                  f"migration moves a running VM (start it, or migrate "
                                  f"it offline with live=False / --offline)")
        if not live and here.isActive():
            raise InvalidArgument(f"VM {name} runs on {source_uri}: an offline migration "
                                  f"moves a definition only, and would leave it running here "
                                  f"while it could be started there on the same disks (shut it "
                                  f"down first, or migrate it live)")
        src_uuid, dst_uuid = host_uuid(src), host_uuid(dst)
        if src_uuid and src_uuid == dst_uuid:
            raise InvalidArgument(
                f"{dest_uri} has the host UUID of {source_uri} ({src_uuid}): libvirt "
                f"refuses a migration to the same host; give each host its own host_uuid "
                f"in libvirtd.conf")
        with translated(f"domain {name}"):
            xml = here.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
        check_disks(name, xml, dst, dest_uri)
        if dry_run:
            return plan
        params = {libvirt.VIR_MIGRATE_PARAM_DEST_XML: dest_xml(xml, dst_uuid)}
        flags = libvirt.VIR_MIGRATE_PERSIST_DEST
        if here.isPersistent():
            flags |= libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
            with translated(f"domain {name}"):
                inactive = here.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE |
                                        libvirt.VIR_DOMAIN_XML_MIGRATABLE)
            params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = dest_xml(inactive, dst_uuid)
        console = _guest_console(xml) if live else None
        before = _uptime(console)
        if live:
            flags |= libvirt.VIR_MIGRATE_LIVE
            params[libvirt.VIR_MIGRATE_PARAM_URI] = uri
        else:
            flags |= libvirt.VIR_MIGRATE_OFFLINE
        import threading
        t0 = time.monotonic()
        box = {}

        def run():
            try:
                box["moved"] = here.migrate3(dst, params, flags)
            except libvirt.libvirtError as exc:
                box["error"] = exc
        worker = threading.Thread(target=run, name="rbdnb-migrate", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            # Abort, and wait for libvirt to end the job (its Finish and Confirm phases run
            # in this client) before the connections close; then say where the VM is.
            try:
                here.abortJob()
            except libvirt.libvirtError:
                pass
            worker.join(ABORT_WAIT)
            raise Timeout(f"migration of VM {name} to {dest_uri} did not finish within "
                          f"{timeout:g} s and was aborted: {_where_now(name, src, dst)}")
        if "error" in box:
            with translated(f"migration of VM {name} to {dest_uri}"):
                raise box["error"]
        moved = box["moved"]
        wall = time.monotonic() - t0
        stats = {}
        if live:
            try:
                stats = moved.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
            except libvirt.libvirtError:
                stats = {}
        value = {"vm": name, "source": source_uri, "dest": dest_uri, "live": live,
                 "downtime_ms": stats.get("downtime"), "time_ms": stats.get("time_elapsed"),
                 "memory_bytes": stats.get("memory_processed"),
                 "disk_bytes": stats.get("disk_total", 0), "wall_s": round(wall, 3)}
        shown = (f", paused {value['downtime_ms']} ms, {value['memory_bytes'] / 2**20:.0f} MiB "
                 f"of memory sent, {value['disk_bytes']} bytes of storage copied"
                 if stats else "")
        if console is not None:
            value.update(_kept_running(
                _guest_console(params[libvirt.VIR_MIGRATE_PARAM_DEST_XML]), before))
            if value["rebooted"] is False:
                shown += (f"; the guest kept running (up {value['uptime_before']:.0f} s "
                          f"before, {value['uptime_after']:.0f} s after, no boot)")
            elif value["rebooted"]:
                shown += "; the guest REBOOTED (its console shows a new boot)"
        return Result(plan.action, True, f"migrated in {wall:.1f} s{shown}", plan, value=value)
    except RbdnbError:
        raise
    except libvirt.libvirtError as exc:
        with translated(f"migration of VM {name} to {dest_uri}"):
            raise exc
    finally:
        close_quietly(src)
        close_quietly(dst)


def round_trips(name: str, source_uri: str, dest_uri: str, count: int = 1, *,
                timeout: float = MIGRATION_TIMEOUT, dry_run: bool = False) -> Result | Plan:
    """Live-migrate VM ``name`` from ``source_uri`` to ``dest_uri`` and back, ``count``
    times: a measurement, so "unchanged" -- the VM ends where it began. The value is a
    DataFrame with a row per move: downtime, time, memory sent, storage copied, the
    guest's uptime before and after, and whether it rebooted. A guest that rebooted, or a
    move that fails, stops the round trips with the error (a VM left at the destination
    is where the error says)."""
    from ..base.units import check_int
    from ..errors import LibvirtError
    check_int(count, "round trips", 1, 100)
    moves = [(i, way, a, b) for i in range(1, count + 1)
             for way, a, b in (("there", source_uri, dest_uri), ("back", dest_uri, source_uri))]
    plan = Plan(f"live-migrate VM {name} to {dest_uri} and back, {count} time(s)")
    for _, _, a, b in moves:
        plan.commands += _plan(name, a, b, True, migration_uri(b)).commands
    plan.note("a measurement: the VM ends on the host it started on")
    if dry_run:
        try:
            migrate(name, source_uri, dest_uri, timeout=timeout, dry_run=True)  # the checks
        except DomainNotFound:
            plan.note(f"VM {name} is not defined yet: the checks run when it is")
        return plan
    import pandas as pd
    rows = []
    for i, way, a, b in moves:
        result = migrate(name, a, b, timeout=timeout)
        if not result.changed:
            raise InvalidArgument(f"VM {name} is not on {a} for move {len(rows) + 1} of "
                                  f"{len(moves)}: {result.message}")
        v = result.value
        rows.append({"move": f"{i} {way}", "from": a, "to": b, "downtime_ms": v["downtime_ms"],
                     "time_ms": v["time_ms"],
                     "memory_mib": round((v["memory_bytes"] or 0) / 2**20, 1),
                     "disk_bytes": v["disk_bytes"], "wall_s": v["wall_s"],
                     "uptime_before": v.get("uptime_before"),
                     "uptime_after": v.get("uptime_after"), "rebooted": v.get("rebooted")})
        if v.get("rebooted"):
            raise LibvirtError(f"the guest of VM {name} rebooted in move {len(rows)} "
                               f"({a} to {b}): its console at {b} shows a new boot")
    frame = pd.DataFrame(rows)
    down = frame.downtime_ms.dropna()
    kept = frame.rebooted.eq(False).all()
    message = (f"{len(rows)} live migrations, the VM back on {source_uri}: guest paused "
               f"{down.median():.0f} ms (median; {down.min():.0f}-{down.max():.0f}), "
               f"{frame.memory_mib.mean():.0f} MiB of memory sent per move, "
               f"{int(frame.disk_bytes.sum())} bytes of storage copied; " +
               ("the guest never rebooted (its uptime went on at every move)" if kept else
                "the guest's console did not say whether it rebooted (not rbdnb's guest)"))
    return Result(plan.action, False, message, plan, value=frame, show_value=True)
