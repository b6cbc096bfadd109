"""The embedded sandbox: a real single-node Ceph cluster and libvirt, on loopback.

``Sandbox(dir).up()`` writes a ``ceph.conf`` and an admin keyring into ``dir``,
starts one monitor, one manager and one OSD (memstore by default, bluestore on a
file as an option) with cephx on and every address on 127.0.0.1, makes sure a
libvirt daemon is serving, and waits until the cluster is healthy. ``down()``
stops exactly the processes ``up()`` started, recognised by pid *and* start time,
and removes the state unless asked to keep it.

As root the sandbox uses the machine's libvirtd (``qemu:///system``); as any
other user it runs unprivileged from the user's own directories and uses the
user's libvirt session daemon (``qemu:///session``), where VMs run as the user.
A sandbox that finds the daemon running uses it and leaves it alone; one that
starts it records that in ``libvirtd.json`` under :func:`paths.runtime_dir`
(``/run/rbdnb`` as root), and the last sandbox to go down stops it. Nothing
else on the machine is touched.

Layout of ``dir``::

    ceph.conf                      what every client reads (CEPH_CONF)
    ceph.client.admin.keyring      mode 0600
    sandbox.json                   fsid, port, store, pids with start times
    mon/ osd/ mgr/                 daemon data
    run/ log/                      pid files, admin sockets, daemon logs

The modules: :mod:`~rbdnb.sandbox.conf` (its files), :mod:`~rbdnb.sandbox.libvirtd` (the
shared libvirt daemon), :mod:`~rbdnb.sandbox.smoke` and :mod:`~rbdnb.sandbox.compare` (checks
run on it); cluster health is :mod:`rbdnb.ceph.health`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..base import paths
from ..base import proc as _proc
from ..base.units import format_size, parse_size
from ..base.waiting import wait_until
from ..ceph.cluster import Cluster, add_default_conf_finder
from ..ceph.mirror import add_default_sites_finder
from ..virt.fleet import add_default_hosts_finder
from ..errors import (InvalidArgument, NotWritable, PortInUse, RbdnbError, SandboxError,
                      Timeout)
from ..ceph.health import Health, read_health
from .conf import (CEPH_TOOLS, DAEMONS, DEFAULT_OSD_SIZE, LIBVIRT_TOOLS, MIN_OSD_SIZE,
                   OWNED_STATE_ENTRIES, STORES, default_dir, locked, mon_address,
                   new_cephx_key, pick_free_port, port_is_free, render_conf, render_keyring,
                   write_private)
from .libvirtd import libvirt_reachable, read_record, release_libvirt, use_libvirt
from . import hosts as _hosts
from . import sites as _sites

@dataclass
class SandboxStatus:
    """What ``up()`` and ``status()`` report."""

    dir: str
    conf: str
    keyring: str
    running: bool
    fsid: str | None = None
    mon_host: str | None = None
    store: str | None = None
    osd_size: int | None = None
    daemons: list[dict] = field(default_factory=list)
    health: Health | None = None
    libvirt_uri: str | None = None
    libvirt_reachable: bool = False
    libvirt_owner: str | None = None
    changed: bool = False
    restarted: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # Every libvirt host of the sandbox (host1 is libvirt_uri): name, uri, reachable.
    hosts: list[dict] = field(default_factory=list)
    # Every site (site a is this cluster): name, conf, running, healthy, mirror daemon.
    sites: list[dict] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.running and self.health is not None and self.health.ok

    def to_json(self) -> dict:
        data = asdict(self)
        data["healthy"] = self.healthy
        if self.health is not None:
            data["health"].update(used_ratio=round(self.health.used_ratio, 4),
                                  full=self.health.full, nearfull=self.health.nearfull)
        return data

    def summary(self) -> str:
        if not self.running:
            return f"sandbox in {self.dir} is not running"
        verb = ("running; brought back: " + ", ".join(self.restarted) if self.restarted
                else "started" if self.changed else "already running")
        lines = [f"sandbox {verb} in {self.dir}",
                 f"  fsid:     {self.fsid}",
                 f"  monitor:  {self.mon_host}",
                 f"  health:   {self.health.describe() if self.health else 'unknown'}"]
        if self.health and self.health.total_bytes:
            lines.append(f"  OSD:      {self.store}, {format_size(self.health.used_bytes)} of "
                         f"{format_size(self.health.total_bytes)} used "
                         f"({self.health.used_ratio:.1%})")
        lines += ["  daemons:  " + ", ".join(
                      f"{d['name']} pid {d['pid']}{'' if d['running'] else ' (stopped)'}"
                      for d in self.daemons),
                  f"  conf:     {self.conf}",
                  f"  keyring:  {self.keyring}",
                  f"  libvirt:  {self.libvirt_uri} "
                  f"({'reachable' if self.libvirt_reachable else 'NOT reachable'}"
                  f"{', started by rbdnb' if self.libvirt_owner == 'rbdnb' else ''})"]
        for host in self.hosts[1:]:
            lines.append(f"  {host['name']}:    {host['uri']} "
                         f"({'reachable' if host['reachable'] else 'NOT reachable'})")
        for site in self.sites:
            lines.append(f"  site {site['name']}:   {site['conf']} "
                         f"({'healthy' if site['healthy'] else 'NOT healthy'}; rbd-mirror "
                         f"{'running' if site['mirror'] else 'NOT running'})")
        if "healthy" in self.timings:
            lines.append(f"  ready in: {self.timings['healthy']:.1f} s")
        return "\n".join(lines)


class Sandbox:
    """A single-node Ceph cluster and libvirt that rbdnb starts itself, on loopback."""

    def __init__(self, directory: str | os.PathLike | None = None, *,
                 osd_size: str | int = DEFAULT_OSD_SIZE, store: str = "memstore",
                 port: int | None = None, timeout: float = 120.0, hosts: int | None = None,
                 sites: int | None = None):
        self.dir = Path(directory).expanduser().absolute() if directory else default_dir()
        if store not in STORES:
            raise InvalidArgument(f"store {store!r} is not valid: expected one of "
                                  f"{', '.join(STORES)}")
        self.store = store
        self.osd_size = parse_size(osd_size, what="OSD size", minimum=MIN_OSD_SIZE,
                                   maximum=2**50)
        if port is not None and not (1 <= int(port) <= 65535):
            raise InvalidArgument(f"port {port!r} is not valid: expected 1-65535")
        self.port = port
        self.timeout = timeout
        if hosts is not None and (isinstance(hosts, bool) or not isinstance(hosts, int)
                                  or not 1 <= hosts <= _hosts.MAX_HOSTS):
            raise InvalidArgument(f"hosts {hosts!r} is not valid: expected 1-{_hosts.MAX_HOSTS} "
                                  f"libvirt hosts")
        self.hosts = hosts
        if sites is not None and (isinstance(sites, bool) or not isinstance(sites, int)
                                  or not 1 <= sites <= _sites.MAX_SITES):
            raise InvalidArgument(f"sites {sites!r} is not valid: expected 1-{_sites.MAX_SITES} "
                                  f"clusters")
        self.sites = sites

    # -- paths ---------------------------------------------------------------------------
    @property
    def conf_path(self) -> Path:
        return self.dir / "ceph.conf"

    @property
    def keyring_path(self) -> Path:
        return self.dir / "ceph.client.admin.keyring"

    @property
    def state_path(self) -> Path:
        return self.dir / "sandbox.json"

    @property
    def libvirt_uri(self) -> str:
        return paths.default_libvirt_uri()

    def env(self) -> dict[str, str]:
        """Environment variables that point the Ceph CLIs, virsh and rbdnb at this sandbox."""
        env = {"CEPH_CONF": str(self.conf_path), "LIBVIRT_DEFAULT_URI": self.libvirt_uri,
               "RBDNB_SANDBOX_DIR": str(self.dir)}
        state = self._state_or_empty()
        if state.get("hosts"):
            env["RBDNB_LIBVIRT_URIS"] = " ".join([self.libvirt_uri] + [
                h["uri"] for h in state["hosts"]])
        if state.get("sites"):
            env["RBDNB_SITES"] = " ".join(f"{n}={c}" for n, c in self.site_confs().items())
        return env

    def site_confs(self) -> dict[str, str]:
        """site name -> its ceph.conf: ``a`` (this cluster) and each further site."""
        state = self._state_or_empty()
        return {"a": str(self.conf_path), **{
            site["name"]: str(Path(site["dir"]) / "ceph.conf") for site in state.get("sites") or []}}

    def host_uris(self) -> list[str]:
        """The libvirt URI of every host of the sandbox, host1 (its libvirt_uri) first."""
        state = self._state_or_empty()
        return [self.libvirt_uri] + [h["uri"] for h in state.get("hosts") or []]

    # -- state -----------------------------------------------------------------------------
    def _load_state(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SandboxError(f"cannot read sandbox state {self.state_path}: {exc}") from None

    def _state_or_empty(self) -> dict:
        """The recorded state, or {} when there is none or it cannot be read (for what only
        reports: env, hosts, sites)."""
        try:
            return self._load_state() or {}
        except SandboxError:
            return {}

    def _save_state(self, state: dict) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.state_path)

    def _daemon_refs(self, state: dict) -> list[_proc.ProcessRef]:
        return [_proc.ProcessRef.from_json(d) for d in state.get("daemons", [])]

    def _found_daemons(self) -> list[_proc.ProcessRef]:
        """This sandbox's Ceph daemons as they run now, found by what they are (a ceph-*
        process reading this sandbox's conf), not by the pid recorded at start: a manager
        respawns itself under a new pid when a module is enabled."""
        refs = []
        for pid, argv in _proc.processes_named(("ceph-mon", "ceph-mgr", "ceph-osd"),
                                               str(self.conf_path)):
            kind = os.path.basename(argv[0])[len("ceph-"):]
            ident = argv[argv.index("-i") + 1] if "-i" in argv[:-1] else "?"
            ref = _proc.ProcessRef.of(f"{kind}.{ident}", pid)
            if ref is not None:
                refs.append(ref)
        return refs

    def _live_daemons(self, state: dict) -> dict[str, _proc.ProcessRef]:
        """name -> a live process of that daemon (recorded, else found)."""
        live = {r.name: r for r in self._found_daemons()}
        live.update({r.name: r for r in self._daemon_refs(state) if r.alive()})
        return live

    def _all_alive(self, state: dict) -> bool:
        live = self._live_daemons(state)
        return all(name in live for name in DAEMONS)

    def is_running(self) -> bool:
        """Whether every daemon of this sandbox runs (by pid and start time; asks no daemon)."""
        try:
            state = self._load_state()
        except SandboxError:
            return False
        return state is not None and bool(state.get("daemons")) and self._all_alive(state)

    def _daemon_argv(self, name: str) -> list:
        kind, ident = name.split(".")
        return [f"ceph-{kind}", "-c", self.conf_path, "-i", ident]

    # -- up ------------------------------------------------------------------------------
    def up(self, *, dry_run: bool = False) -> SandboxStatus:
        """Start the sandbox, or report the running one and change nothing; start again
        whatever part of it is missing (a killed daemon, a libvirtd that died).

        Raises :class:`MissingTool`, :class:`NotWritable`, :class:`PortInUse`,
        :class:`Timeout` or :class:`SandboxError`; on any failure every daemon this
        call started is stopped again. With ``dry_run``, returns the plan.
        """
        if dry_run:
            return self._plan_up()
        for tool in CEPH_TOOLS + LIBVIRT_TOOLS:
            _proc.which(tool)
        self._check_writable()
        with locked(self.dir / ".lock"):
            state = self._load_state()
            if state is not None:
                if state.get("daemons") and self._all_alive(state):
                    # The Ceph daemons run. libvirt may not (killed, or a reboot of the
                    # daemon): `up` brings back every missing part.
                    restarted = self._ensure_libvirt(state)
                    restarted += self._ensure_hosts(state)
                    # Still wait for health (PGs of a pool created a moment ago may be
                    # peering), so that `up` means "usable" either way; PGs stuck laggy
                    # after a frozen OSD are re-peered.
                    waited = self._wait_healthy(deadline=time.monotonic() + self.timeout,
                                                healed=restarted)
                    restarted += self._ensure_sites(state)
                    status = self._reported(waited)
                    status.changed = bool(restarted)
                    status.restarted = restarted
                    return status
                return self._restart(state)
            return self._create()

    def _reported(self, waited: Health) -> SandboxStatus:
        """What ``up`` reports: the status now, with the health ``up`` waited for when the
        status's own quick reading (bounded at a few seconds, on a busy machine) could not
        get one as good: ``up`` returns once the cluster was healthy."""
        status = self.status()
        if status.running and waited.ok and not (status.health and status.health.ok):
            status.health = waited
            if status.sites:
                status.sites[0]["healthy"] = status.healthy
        return status

    def _ensure_libvirt(self, state: dict) -> list[str]:
        """Start libvirt again if it no longer serves the sandbox's URI; what was started."""
        uri = (state.get("libvirt") or {}).get("uri") or self.libvirt_uri
        if libvirt_reachable(uri):
            return []
        before = {p["name"] for p in read_record()["processes"]}
        self._attach_libvirt(state)
        self._save_state(state)
        if not libvirt_reachable(uri):
            raise SandboxError(f"libvirtd does not answer on {uri} although its socket is "
                               f"there (a frozen daemon?): see {paths.libvirt_daemons(uri).logs}")
        after = [p["name"] for p in read_record()["processes"]]
        return [name for name in after if name not in before] or ["libvirtd"]

    def _plan_up(self):
        from ..base.plan import Plan
        plan = Plan(f"start the sandbox in {self.dir}")
        state = self._load_state() if self.state_path.exists() else None
        if state is not None:
            live = self._live_daemons(state)
            missing = [n for n in DAEMONS if n not in live]
            for name in missing:
                plan.add(*map(str, self._daemon_argv(name)))
            if not missing:
                plan.note("the Ceph daemons run already")
        else:
            plan.add("monmaptool", "--create", "--fsid", "<new fsid>", "...")
            plan.add("ceph-mon", "--mkfs", "-i", "a", "...")
            for name in DAEMONS:
                plan.add(*map(str, self._daemon_argv(name)))
            plan.note(f"{self.store} OSD of {format_size(self.osd_size)}, monitor on "
                      f"127.0.0.1:{self.port or '<a free port>'}")
        if not libvirt_reachable(self.libvirt_uri, timeout=3):
            plan.add("libvirtd", "-d").note(f"libvirtd for {self.libvirt_uri} is not answering")
        sites = {r["name"] for r in (state or {}).get("sites") or []}
        for name in _sites.SITE_NAMES[1:self.sites or len(sites) + 1]:
            plan.note(f"site {name}: a second cluster in {_sites.site_dir(self.dir, name)}, "
                      f"and an rbd-mirror daemon on each site" if name not in sites else
                      f"site {name}: started again where it does not run")
        have = {r["name"]: r for r in (state or {}).get("hosts") or []}
        for index in range(2, (self.hosts or len(have) + 1) + 1):
            name = _hosts.host_name(index)
            if name not in have or not _hosts.host_alive(have[name]):
                plan.add("libvirtd", "-d").note(
                    f"{name}: a libvirtd of its own, with its own host UUID")
        plan.note("a dry run starts nothing")
        return plan

    def _check_writable(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise NotWritable(f"sandbox directory {self.dir} is not writable: "
                              f"{exc.strerror or exc}") from None

    def _create(self) -> SandboxStatus:
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        fsid = str(uuid.uuid4())
        osd_uuid = str(uuid.uuid4())
        state = {"fsid": fsid, "port": self.port, "mon_host": None, "store": self.store,
                 "osd_size": self.osd_size, "osd_uuid": osd_uuid, "created": time.time(),
                 "daemons": [], "libvirt": None}
        started: list[_proc.ProcessRef] = []
        try:
            if self.port is not None and not port_is_free(self.port):
                raise PortInUse(f"port 127.0.0.1:{self.port} is already in use; choose another "
                                f"with --port, or leave --port out to pick a free one")
            state["port"] = port = self.port or pick_free_port()
            state["mon_host"] = mon_address(port)
            self._write_initial_files(state)
            self._save_state(state)
            timings["files"] = time.monotonic() - t0
            self._start_daemon("mon.a", state, started)
            timings["mon"] = time.monotonic() - t0
            with self._client(timeout=15) as cluster:
                cluster.mon_command({"prefix": "osd new", "uuid": osd_uuid, "id": 0}, "osd.0")
                # Device health monitoring scrapes SMART data (none on a memstore OSD) and
                # creates a pool of its own the moment an OSD is up, after the cluster first
                # looks healthy; the sandbox starts with no pools instead.
                cluster.mon_command({"prefix": "config set", "who": "mgr",
                                     "name": "mgr/devicehealth/enable_monitoring",
                                     "value": "false", "force": True}, "manager config")
            # mkfs reads no config from the monitor: everything it needs is in the conf.
            _proc.run(["ceph-osd", "-c", self.conf_path, "-i", "0", "--mkfs",
                       "--osd-uuid", osd_uuid, "--no-mon-config"],
                      timeout=120, what="ceph-osd --mkfs")
            self._start_daemon("mgr.x", state, started)
            self._start_daemon("osd.0", state, started)
            timings["daemons"] = time.monotonic() - t0
            self._attach_libvirt(state)
            self._ensure_hosts(state)
            timings["libvirt"] = time.monotonic() - t0
            self._save_state(state)
            waited = self._wait_healthy(deadline=t0 + self.timeout)
            timings["healthy"] = time.monotonic() - t0
            self._ensure_sites(state)
        except BaseException:
            self._abort(state, started)
            raise
        status = self._reported(waited)
        status.changed = True
        status.timings = {k: round(v, 3) for k, v in timings.items()}
        return status

    def _restart(self, state: dict) -> SandboxStatus:
        """Start again the daemons of a sandbox whose state was kept (``down --keep``)."""
        t0 = time.monotonic()
        started: list[_proc.ProcessRef] = []
        alive = set(self._live_daemons(state))
        if state["store"] == "memstore" and not state.get("kept") and "osd.0" not in alive:
            # memstore saves its data only on a clean stop (`down --keep`); after a crash or
            # a reboot its PGs are gone and a restarted OSD would never become active.
            raise SandboxError(
                f"sandbox in {self.dir} was not stopped cleanly and its memstore OSD lost its "
                f"data: run `rbdnb sandbox down` to clear it, then `rbdnb sandbox up`")
        port = int(state["port"])
        if "mon.a" not in alive and not port_is_free(port):
            raise PortInUse(f"port 127.0.0.1:{port} of the kept sandbox in {self.dir} is now "
                            f"taken by another program")
        state["daemons"] = [r.to_json() for r in self._live_daemons(state).values()]
        try:
            for name in DAEMONS:
                if name not in alive:
                    self._start_daemon(name, state, started)
            self._attach_libvirt(state)
            self._ensure_hosts(state)
            state["kept"] = False
            self._save_state(state)
            waited = self._wait_healthy(deadline=t0 + self.timeout)
            self._ensure_sites(state)
        except BaseException:
            self._abort(state, started, remove=False)
            raise
        status = self._reported(waited)
        status.changed = True
        status.timings = {"healthy": round(time.monotonic() - t0, 3)}
        return status

    def _write_initial_files(self, state: dict) -> None:
        d = self.dir
        for sub in ("run", "log", "tmp", "mon", "mgr/ceph-x", "osd/ceph-0"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        self.conf_path.write_text(render_conf(d, fsid=state["fsid"], port=state["port"],
                                              store=self.store, osd_size=self.osd_size))
        admin = ("client.admin", {"mon": "allow *", "osd": "allow *", "mgr": "allow *",
                                  "mds": "allow *"})
        osd = ("osd.0", {"mon": "allow profile osd", "mgr": "allow profile osd",
                         "osd": "allow *"})
        mgr = ("mgr.x", {"mon": "allow profile mgr", "osd": "allow *", "mds": "allow *"})
        keys = {name: new_cephx_key() for name in ("mon.", "client.admin", "osd.0", "mgr.x")}
        write_private(self.keyring_path, render_keyring({admin[0]: (keys[admin[0]], admin[1])}))
        write_private(d / "osd/ceph-0/keyring", render_keyring({osd[0]: (keys[osd[0]], osd[1])}))
        write_private(d / "mgr/ceph-x/keyring", render_keyring({mgr[0]: (keys[mgr[0]], mgr[1])}))
        # The monitor's bootstrap keyring holds every entity, so mkfs registers them all
        # at once and no `ceph auth` round trip is needed later.
        bootstrap = d / "tmp/mon.keyring"
        write_private(bootstrap, render_keyring({
            "mon.": (keys["mon."], {"mon": "allow *"}),
            admin[0]: (keys[admin[0]], admin[1]), osd[0]: (keys[osd[0]], osd[1]),
            mgr[0]: (keys[mgr[0]], mgr[1])}))
        monmap = d / "tmp/monmap"
        try:
            _proc.run(["monmaptool", "--create", "--clobber", "--fsid", state["fsid"],
                       "--addv", "a", f"[{mon_address(state['port'])}]", monmap],
                      timeout=30, what="monmaptool --create")
            _proc.run(["ceph-mon", "-c", self.conf_path, "--mkfs", "-i", "a",
                       "--monmap", monmap, "--keyring", bootstrap],
                      timeout=60, what="ceph-mon --mkfs")
        finally:
            bootstrap.unlink(missing_ok=True)
            monmap.unlink(missing_ok=True)

    def _start_daemon(self, name: str, state: dict, started: list[_proc.ProcessRef]) -> None:
        """Start a Ceph daemon; it forks into the background once it is initialised."""
        pidfile = self.dir / "run" / f"ceph-{name}.pid"
        pidfile.unlink(missing_ok=True)
        _proc.run(self._daemon_argv(name), timeout=60, what=f"starting {name}")
        def forked():
            pid = _proc.read_pidfile(str(pidfile))
            return _proc.ProcessRef.of(name, pid) if pid else None
        ref = wait_until(forked, 10, interval=0.02)
        if ref is None:
            raise SandboxError(f"{name} did not stay up; see {self.dir}/log/ceph-{name}.log")
        started.append(ref)
        state["daemons"].append(ref.to_json())
        self._save_state(state)

    def _abort(self, state: dict, started: list[_proc.ProcessRef], remove: bool = True) -> None:
        """Undo a failed up(): stop what this call started, and drop a half-made state."""
        if remove:
            for record in state.get("hosts") or []:
                _hosts.stop_host(record)
            state["hosts"] = []
            self._stop_sites(state)
        for ref in reversed(started):
            ref.stop(timeout=10)
        if state.get("libvirt"):
            release_libvirt(self.dir)
            state["libvirt"] = None
        if remove:
            self._remove_state_files()
        else:
            state["daemons"] = [d for d in state["daemons"]
                                if _proc.ProcessRef.from_json(d).alive()]
            self._save_state(state)

    # -- libvirt ---------------------------------------------------------------------------
    def _attach_libvirt(self, state: dict) -> None:
        owner = use_libvirt(self.dir, self.libvirt_uri)
        state["libvirt"] = {"uri": self.libvirt_uri, "owner": owner}

    def _ensure_hosts(self, state: dict) -> list[str]:
        """Start hosts 2..N (``hosts``; default: those the sandbox has) where they do not
        run; what was started. A host keeps its UUID across restarts."""
        records = list(state.get("hosts") or [])
        wanted = self.hosts if self.hosts is not None else len(records) + 1
        started = []
        for index in range(2, wanted + 1):
            name = _hosts.host_name(index)
            record = next((r for r in records if r["name"] == name), None)
            if record is not None and _hosts.host_alive(record):
                continue
            # A host that died comes back where it was, with its UUID (and, as root, the
            # definitions its namespace keeps).
            base = Path(record["base"]) if record else _hosts.host_base(self.dir, name)
            fresh = _hosts.start_host(base, name, record["uuid"] if record else None)
            records = [r for r in records if r["name"] != name] + [fresh]
            state["hosts"] = records
            self._save_state(state)
            started.append(f"libvirtd of {name}")
        state["hosts"] = sorted(records, key=lambda r: int(r["name"][4:]))
        if started:
            self._save_state(state)
        return started

    def _site(self, record: dict) -> "Sandbox":
        return Sandbox(record["dir"], osd_size=self.osd_size, store=self.store,
                       timeout=self.timeout)

    def _ensure_sites(self, state: dict) -> list[str]:
        """Start sites b.. (``sites``; default: those the sandbox has) and an rbd-mirror
        daemon on every site, where they do not run; what was started."""
        records = list(state.get("sites") or [])
        wanted = self.sites if self.sites is not None else len(records) + 1
        if wanted < 2:
            return []
        started = []
        for name in _sites.SITE_NAMES[1:wanted]:
            record = next((r for r in records if r["name"] == name), None)
            if record is None:
                record = {"name": name, "dir": str(_sites.site_dir(self.dir, name))}
                records.append(record)
                state["sites"] = records
                self._save_state(state)
            site = self._site(record)
            if not site.is_running():
                site.up()
                started.append(f"site {name}")
        state["sites"] = records
        for name, box in [("a", self)] + [(r["name"], self._site(r)) for r in records]:
            if not _sites.mirror_alive(box.conf_path, name):
                with box._client(timeout=30) as cluster:
                    _sites.start_mirror(box.dir, box.conf_path, name, cluster)
                started.append(f"rbd-mirror.{name}")
        self._save_state(state)
        return started

    def _stop_sites(self, state: dict, keep: bool = False) -> list[str]:
        stopped = _sites.stop_mirror(self.conf_path, "a")
        for record in state.get("sites") or []:
            site = self._site(record)
            stopped += _sites.stop_mirror(site.conf_path, record["name"])
            stopped += [f"{what} of site {record['name']}" for what in site.down(keep=keep)]
        if not keep:
            state["sites"] = []
        return stopped

    def _stop_hosts(self, state: dict, keep: bool = False) -> list[str]:
        """Stop every further host; without ``keep`` remove them too (with it, their
        records and UUIDs stay for ``up``)."""
        stopped = []
        for record in state.get("hosts") or []:
            stopped += _hosts.stop_host(record, remove=not keep)
        if not keep:
            state["hosts"] = []
        return stopped

    # -- health ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _client(self, timeout: float = 10):
        """A short-lived admin connection to this sandbox (a :class:`~rbdnb.ceph.cluster.Cluster`)."""
        try:
            import rados  # noqa: F401
        except ImportError:
            raise SandboxError("the Python module rados is missing: install the Debian package "
                               "python3-rados and use a venv made with --system-site-packages "
                               "(scripts/setup.sh does both)") from None
        cluster = Cluster(str(self.conf_path), keyring=str(self.keyring_path),
                          timeout=max(1, int(timeout)))
        try:
            cluster.connect()
        except Timeout:
            raise Timeout(f"cannot reach the sandbox monitor {self._mon_host()} within "
                          f"{timeout:g} s") from None
        try:
            yield cluster
        finally:
            cluster.close()

    def _mon_host(self) -> str:
        state = self._load_state() or {}
        return state.get("mon_host", "?")

    # A PG whose read lease ran out (its OSD was frozen past the lease) is "laggy" and
    # holds every op until the lease is renewed. With peers that happens at once; a
    # single-OSD PG in Ceph 16.2 can stay laggy for good (seen here after SIGSTOP/SIGCONT of
    # the OSD, ops "waiting for readable" for many minutes). Marking the OSD down makes it
    # rejoin and re-peer, which starts a new lease. The lease is osd_heartbeat_grace (20 s)
    # x read_lease_ratio (0.8); a PG laggy for longer than this is not going to recover.
    LAGGY_GRACE = 30.0

    def _wait_healthy(self, deadline: float, healed: list | None = None) -> Health:
        """Wait until healthy; with ``healed`` (a list), re-peer PGs stuck laggy (once) and
        append what was done to it."""
        seen = {"health": Health(), "laggy_since": None, "re_peered": False}
        with self._client(timeout=max(1, deadline - time.monotonic())) as cluster:
            def healthy() -> bool:
                health = seen["health"] = read_health(cluster)
                if health.ok:
                    return True
                now = time.monotonic()
                if health.pgs_laggy and healed is not None:
                    seen["laggy_since"] = seen["laggy_since"] or now
                    lasted = now - seen["laggy_since"]
                    if lasted > self.LAGGY_GRACE and not seen["re_peered"]:
                        cluster.mon_command({"prefix": "osd down", "ids": ["0"]}, "osd.0")
                        seen["re_peered"] = True
                        healed.append(f"osd.0 re-peered ({health.pgs_laggy} PG(s) had been "
                                      f"laggy for {lasted:.0f} s)")
                else:
                    seen["laggy_since"] = None
                return False

            if not wait_until(healthy, max(0.0, deadline - time.monotonic()), interval=0.2):
                raise Timeout(f"sandbox in {self.dir} not healthy after {self.timeout:g} s: "
                              f"{seen['health'].describe()}")
        return seen["health"]

    # -- status ----------------------------------------------------------------------------
    STATUS_HEALTH_TIMEOUT = 5.0
    STATUS_LIBVIRT_TIMEOUT = 3.0

    def status(self) -> SandboxStatus:
        """What runs, with pids, health and fullness; answers within ~10 s whatever the
        daemons do (a frozen monitor or libvirtd is reported, not waited for)."""
        state = self._load_state()
        status = SandboxStatus(dir=str(self.dir), conf=str(self.conf_path),
                               keyring=str(self.keyring_path), running=False,
                               libvirt_uri=self.libvirt_uri)
        if state is None:
            return status
        live = self._live_daemons(state)
        recorded = {r.name: r for r in self._daemon_refs(state)}
        status.fsid, status.mon_host = state["fsid"], state["mon_host"]
        status.store, status.osd_size = state["store"], state["osd_size"]
        names = list(dict.fromkeys([*recorded, *live]))
        status.daemons = [{"name": n, "pid": (live.get(n) or recorded[n]).pid,
                           "running": n in live} for n in names]
        status.running = bool(state.get("daemons")) and all(n in live for n in DAEMONS)
        libvirt = state.get("libvirt") or {}
        status.libvirt_uri = libvirt.get("uri", self.libvirt_uri)
        status.libvirt_owner = libvirt.get("owner")
        status.libvirt_reachable = libvirt_reachable(status.libvirt_uri,
                                                     timeout=self.STATUS_LIBVIRT_TIMEOUT)
        status.hosts = [{"name": "host1", "uri": status.libvirt_uri,
                         "reachable": status.libvirt_reachable}]
        for record in state.get("hosts") or []:
            status.hosts.append({"name": record["name"], "uri": record["uri"],
                                 "reachable": _hosts.host_alive(record) and libvirt_reachable(
                                     record["uri"], timeout=self.STATUS_LIBVIRT_TIMEOUT)})
        if state.get("sites"):
            status.sites = [{"name": "a", "conf": str(self.conf_path), "running": None,
                             "healthy": None,
                             "mirror": _sites.mirror_alive(self.conf_path, "a")}]
            for record in state["sites"]:
                site = self._site(record)
                sub = site.status()
                status.sites.append({"name": record["name"], "conf": str(site.conf_path),
                                     "running": sub.running, "healthy": sub.healthy,
                                     "mirror": _sites.mirror_alive(site.conf_path,
                                                                   record["name"])})
        if "mon.a" in live:
            def read():
                with self._client(timeout=self.STATUS_HEALTH_TIMEOUT) as cluster:
                    return read_health(cluster)
            try:
                status.health = _proc.bounded(read, self.STATUS_HEALTH_TIMEOUT + 1,
                                              f"the sandbox monitor {status.mon_host}")
            except RbdnbError as exc:
                status.health = Health(status="UNREACHABLE", checks={"CLIENT": str(exc)})
        if status.sites:
            status.sites[0].update(running=status.running, healthy=status.healthy)
        return status

    # -- down ------------------------------------------------------------------------------
    LIBVIRT_CLEANUP_TIMEOUT = 60.0

    def down(self, keep: bool = False, *, dry_run: bool = False):
        """Stop the daemons this sandbox started; remove its state unless ``keep``.

        Without ``keep``, the libvirt VMs, rbd pools and secrets that point at this
        sandbox's monitor are removed first. Daemons are found by what they are (a
        ``ceph-*`` process reading this sandbox's conf), so one that respawned under a
        new pid is stopped too; a libvirtd that does not answer is not waited for.
        Returns what was stopped or removed; with ``dry_run``, the plan.
        """
        if dry_run:
            return self._plan_down(keep)
        if not self.dir.exists():
            return []
        with locked(self.dir / ".lock"):
            state = self._load_state()
            if state is None:
                return []
            # VMs and pools on this cluster go first, while the cluster still answers.
            stopped = [] if keep else self._forget_libvirt_objects(state)
            # The other hosts and their VMs, while the cluster still answers them; the
            # other sites and the mirror daemons.
            stopped += self._stop_hosts(state, keep=keep)
            stopped += self._stop_sites(state, keep=keep)
            if keep:
                self._save_state(state)
            # Stop the manager and the OSD before the monitor they report to. A kept
            # memstore OSD saves its data on a clean stop, which can take a while.
            order = {"mgr": 0, "osd": 1, "mon": 2}
            for _ in range(3):  # again, for a daemon that respawned while we stopped it
                live = sorted(self._live_daemons(state).values(),
                              key=lambda r: order.get(r.name[:3], 3))
                if not live:
                    break
                for ref in live:
                    # Without --keep the OSD's data is about to be deleted: kill it rather
                    # than let memstore write gigabytes to disk first.
                    kill = not keep and ref.name.startswith("osd")
                    if ref.stop(timeout=0 if kill else (120 if keep else 15)) and \
                            ref.name not in stopped:
                        stopped.append(ref.name)
            if state.get("libvirt"):
                stopped += release_libvirt(self.dir)
            if keep:
                state["daemons"] = []
                state["libvirt"] = None
                state["kept"] = True
                self._save_state(state)
        if not keep:
            self._remove_state_files()
        return stopped

    def _plan_down(self, keep: bool):
        from ..base.plan import Plan
        plan = Plan(f"stop the sandbox in {self.dir}" + (" (keeping its state)" if keep else ""))
        state = self._load_state() if self.dir.exists() else None
        if state is None:
            return plan.note("nothing runs there: nothing to do")
        for ref in self._live_daemons(state).values():
            plan.add("kill", str(ref.pid)).note(f"{ref.name} pid {ref.pid}")
        for record in state.get("hosts") or []:
            plan.note(f"stop {record['name']} ({record['uri']}): its VMs and libvirt daemons")
        for record in state.get("sites") or []:
            plan.note(f"stop site {record['name']} ({record['dir']}) and the rbd-mirror daemons")
        if not keep:
            found = self._libvirt_objects(state, remove=False)
            plan.notes += [f"remove {what} (it points at this sandbox's monitor)"
                           for what in found]
            plan.add("rm", "-r", str(self.dir))
        plan.note("libvirtd is stopped too if rbdnb started it and no other sandbox uses it")
        return plan

    def _forget_libvirt_objects(self, state: dict) -> list[str]:
        """Remove what libvirt keeps that points at this sandbox's monitor.

        VMs with RBD disks on it are forced off and undefined, rbd storage pools on
        it are stopped and undefined, and the ceph secrets those pools use are
        undefined: with the cluster gone they cannot work, and an autostarted pool
        whose monitor is gone slows libvirtd's own start.
        """
        return self._libvirt_objects(state, remove=True)

    def _libvirt_objects(self, state: dict, *, remove: bool) -> list[str]:
        uri = (state.get("libvirt") or {}).get("uri") or self.libvirt_uri
        if not libvirt_reachable(uri):
            return []  # not running, or not answering (frozen): nothing to wait for
        try:
            return _proc.bounded(lambda: self._walk_libvirt(state, uri, remove),
                                 self.LIBVIRT_CLEANUP_TIMEOUT, f"libvirt {uri}")
        except RbdnbError:
            return []

    def _walk_libvirt(self, state: dict, uri: str, remove: bool) -> list[str]:
        try:
            import libvirt
            from ..virt import close_quietly, connect_libvirt, objects_on_cluster
            conn = connect_libvirt(uri, timeout=10)
        except (ImportError, RbdnbError):
            return []
        port = str(state["port"])
        found = []

        def attempt(what: str, *steps) -> None:
            # Each object on its own: one that fails does not stop the others.
            if remove:
                for step in steps:
                    try:
                        step()
                    except libvirt.libvirtError:
                        pass
            found.append(what)

        try:
            ours = objects_on_cluster(conn, [("127.0.0.1", port), ("localhost", port)])
            for name in ours.domains:
                dom = conn.lookupByName(name)
                attempt(f"domain {name}", lambda d=dom: d.destroy() if d.isActive() else None,
                        lambda d=dom: d.undefine())
            for name in ours.pools:
                pool = conn.storagePoolLookupByName(name)
                attempt(f"libvirt pool {name}", lambda p=pool: p.destroy() if p.isActive() else None,
                        lambda p=pool: p.undefine())
            for uuid in ours.secrets:
                try:
                    secret = conn.secretLookupByUUIDString(uuid)
                except libvirt.libvirtError:
                    continue
                attempt(f"secret {uuid}", secret.undefine)
        except (libvirt.libvirtError, RbdnbError):
            pass
        finally:
            close_quietly(conn)
        return found

    def _remove_state_files(self) -> None:
        for name in OWNED_STATE_ENTRIES:
            path = self.dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for extra in self.dir.glob("ceph.client.*.keyring"):
            extra.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.dir.rmdir()  # only if nothing of the user's is left in it


def _running_default_files() -> tuple[str, str] | None:
    """(conf, admin keyring) of the running default sandbox, if one runs."""
    box = Sandbox()
    return (str(box.conf_path), str(box.keyring_path)) if box.is_running() else None


def _running_default_hosts() -> list[str] | None:
    """The libvirt URIs of the running default sandbox's hosts, if it runs with more than one."""
    box = Sandbox()
    uris = box.host_uris() if box.is_running() else []
    return uris if len(uris) > 1 else None


# `rbdnb.connect()` told no conf uses the running default sandbox first; a fleet named by
# no one is the running default sandbox's hosts.
add_default_conf_finder(_running_default_files)
add_default_hosts_finder(_running_default_hosts)


def _running_default_sites() -> dict[str, str] | None:
    """site -> conf of the running default sandbox, if it runs with a second site."""
    box = Sandbox()
    sites = box.site_confs() if box.is_running() else {}
    return sites if len(sites) > 1 else None


add_default_sites_finder(_running_default_sites)
