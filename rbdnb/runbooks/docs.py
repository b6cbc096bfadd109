"""The docs site's front page: the guide regenerated from the executed runbooks.

For each of the guide's steps (:mod:`rbdnb.runbooks.guide`): the command as the guide wrote
it (its mistakes noted), the runbook cell that performs it (tagged ``guide-ID``), that cell's
output from this run, and the check by the real tool, run right after that runbook. Every
page carries the build's metadata (date, versions, cluster fsid); no page holds a key
(everything written passes :func:`~rbdnb.base.secret.redact`).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
import re
import shlex
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..base.secret import redact
from .guide import EXTRA, STEPS, GuideStep, steps_of

CHECK_TIMEOUT = 60
MOST_OUTPUT = 6000


@dataclass
class Check:
    """One check by a real tool: the command line, what it printed (redacted), success."""
    line: str
    output: str
    ok: bool


@dataclass
class Connection:
    """What the checks of one runbook's steps run with: its parameters, the cluster's
    connection options (paths, never a key) and the libvirt URI."""
    values: dict
    ceph_args: list[str] = field(default_factory=list)
    rbdspec: str = ""
    uri: str = ""
    fsid: str = ""


def connection_for(values: dict) -> Connection:
    """Connect as the runbook did (its conf, client, keyring) to learn the options and fsid."""
    from ..ceph.cluster import Cluster
    from ..ceph.qemu import rbd_filename
    from ..virt.connection import default_uri
    conn = Connection(dict(values), uri=values.get("libvirt_uri") or default_uri())
    with Cluster(values.get("conf"), client=values.get("client") or "admin",
                 keyring=values.get("keyring")).connect() as cluster:
        # The options rbdnb's own plans show: the same command lines an operator types.
        conn.ceph_args = cluster.cli_args()
        conn.rbdspec = rbd_filename("x/x", cluster).removeprefix("rbd:x/x")
        conn.fsid = cluster.fsid
    return conn


def check_line(template: str, conn: Connection) -> str:
    """A check's command line: the template with the runbook's values and connection."""
    fields = {k: ("" if v is None else v) for k, v in conn.values.items()}
    fields.update(ceph=shlex.join(["ceph", *conn.ceph_args]),
                  rbd=shlex.join(["rbd", *conn.ceph_args]), rbdspec=conn.rbdspec, uri=conn.uri)
    return template.format(**fields)


def run_check(line: str) -> Check:
    """Run a check's command line (no shell), bounded; JSON indented; output redacted."""
    try:
        done = subprocess.run(shlex.split(line), capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Check(line, f"(no answer within {CHECK_TIMEOUT} s)", False)
    except OSError as exc:
        return Check(line, f"({exc.strerror}: {exc.filename})", False)
    text = done.stdout
    try:  # JSON shown indented, as an operator reads it
        text = json.dumps(json.loads(text), indent=2)
    except ValueError:
        pass
    text = redact((text + done.stderr).strip())  # before cutting: a cut key is still a key
    if len(text) > MOST_OUTPUT:
        text = text[:MOST_OUTPUT] + "\n…"
    return Check(line, text, done.returncode == 0)


def run_checks(runbook: str, values: dict) -> tuple[dict[str, list[Check]], str]:
    """The real tools' checks of ``runbook``'s steps, and the cluster's fsid."""
    steps = [s for s in steps_of(runbook) if s.check]
    if not steps or values.get("dry_run"):
        return {}, ""  # a dry run made nothing to check
    try:
        conn = connection_for(values)
    except Exception as exc:  # the cluster went away since: every check says so
        why = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return {s.id: [Check(t, f"(not run: {why})", False) for t in s.check] for s in steps}, ""
    return {s.id: [run_check(check_line(t, conn)) for t in s.check] for s in steps}, conn.fsid


# -- the executed notebooks' cells -------------------------------------------------------------
def tagged_cells(notebook: str | os.PathLike) -> dict[str, list[dict]]:
    """The code cells of an executed notebook by their ``guide-ID`` tags."""
    try:
        nb = json.loads(Path(notebook).read_text())
    except (OSError, ValueError):
        return {}
    found: dict[str, list[dict]] = {}
    for cell in nb.get("cells", []):
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith("guide-"):
                found.setdefault(tag, []).append(cell)
    return found


def _markdown(text: str) -> str:
    import mistune
    return mistune.create_markdown(escape=True)(text)


def render_output(output: dict) -> str:
    """One output of an executed cell as HTML: text, markdown, tables, plots; no widgets."""
    kind = output.get("output_type")
    if kind == "stream":
        return f"<pre class='out'>{html.escape(''.join(output.get('text', '')))}</pre>"
    if kind == "error":
        return (f"<pre class='out err'>{html.escape(output.get('ename', ''))}: "
                f"{html.escape(output.get('evalue', ''))}</pre>")
    data = output.get("data", {})
    if "application/vnd.jupyter.widget-view+json" in data:
        return ""  # a progress bar: nothing to show once it is done
    if "image/png" in data:
        png = "".join(data["image/png"]).replace("\n", "")
        try:
            base64.b64decode(png, validate=True)
        except ValueError:
            return "<p class='err'>(a plot that is not a valid PNG)</p>"
        return f"<img alt='plot' src='data:image/png;base64,{png}'>"
    if "text/html" in data:
        return f"<div class='out'>{''.join(data['text/html'])}</div>"
    if "text/markdown" in data:
        return f"<div class='out'>{_markdown(''.join(data['text/markdown']))}</div>"
    if "text/plain" in data:
        return f"<pre class='out'>{html.escape(''.join(data['text/plain']))}</pre>"
    return ""


def render_cell(cell: dict, runbook: str) -> str:
    """A cell as the page shows it: its runbook, its source, its outputs."""
    source = "".join(cell.get("source", ""))
    outputs = "".join(render_output(o) for o in cell.get("outputs", []))
    return (f"<div class='cell'><div class='from'>{html.escape(runbook)}</div>"
            f"<pre class='src'><code>{html.escape(source)}</code></pre>"
            f"{outputs or '<p class=quiet>(no output)</p>'}</div>")


# -- the page --------------------------------------------------------------------------------
def build_metadata(fsid: str) -> dict:
    """When, where and with what the site was built: versions and the cluster's fsid."""
    from .. import __version__

    def version(argv):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            return done.stdout.strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return "unknown"
    return {"built": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": socket.gethostname(), "rbdnb": __version__,
            "ceph": version(["ceph", "--version"]), "qemu-img": version(["qemu-img", "--version"]),
            "libvirt": version(["virsh", "--version"]), "cluster fsid": fsid or "unknown"}


def metadata_html(meta: dict) -> str:
    """The metadata as the banner every page carries."""
    items = " · ".join(f"<span><b>{html.escape(k)}</b> {html.escape(str(v))}</span>"
                       for k, v in meta.items())
    return f"<div class='rbdnb-build' style='font:12px sans-serif;color:#555;padding:4px " \
           f"8px;border-bottom:1px solid #ddd'>{items}</div>"


def stamp(page: str | os.PathLike, meta: dict) -> None:
    """Put the build's metadata at the top of an HTML page (a runbook's, rendered)."""
    path = Path(page)
    text = path.read_text()
    banner = metadata_html(meta)
    text, n = re.subn(r"(<body[^>]*>)", lambda m: m.group(1) + banner, text, count=1)
    path.write_text(redact(text if n else banner + text))


STYLE = """body{font-family:sans-serif;margin:0 auto;max-width:72em;padding:0 1.5em 3em}
h2{border-bottom:2px solid #446;padding-bottom:4px;margin-top:2em}
.step{border-left:4px solid #88a;padding:0 1em;margin:1.5em 0}
.step h3{margin:.4em 0}pre{background:#f6f6f8;padding:6px 8px;overflow-x:auto;font-size:13px}
pre.guide{background:#fff8e6}pre.src{background:#eef3ff}pre.check{background:#eefaf0}
.mistake{color:#a40;font-weight:bold}.note{color:#335}.from{font-size:12px;color:#667}
.quiet{color:#888}.err{color:#b00}.fail{color:#b00;font-weight:bold}
.out table{border-collapse:collapse;font-size:13px}.out td,.out th{border:1px solid #ccc;
padding:2px 6px}img{max-width:100%}table.runs td,table.runs th{border:1px solid #ccc;
padding:4px 8px}table.runs{border-collapse:collapse}"""


def step_html(step: GuideStep, cells: dict, checks: dict, shown: set) -> str:
    """One guide step: the guide's command, its mistakes, the cells, the checks."""
    out = [f"<div class='step' id='step-{html.escape(step.id)}'>"
           f"<h3>{html.escape(step.id)} {html.escape(step.title)}</h3>"]
    if step.guide:
        out.append(f"<p>The guide:</p><pre class='guide'>{html.escape(step.guide)}</pre>")
    if step.mistake:
        out.append(f"<p class='mistake'>In the guide: {html.escape(step.mistake)}</p>")
    if step.note:
        out.append(f"<p class='note'>rbdnb: {html.escape(step.note)}</p>")
    for runbook, cell in cells.get(step.tag, []):
        key = (runbook, cell.get("id"))
        if key in shown:  # one cell, two steps: shown under the first
            continue
        shown.add(key)
        out.append(render_cell(cell, runbook))
    if not cells.get(step.tag) and step.guide:
        out.append("<p class='quiet'>No cell of its own: see the note.</p>")
    for check in checks.get(step.id, []):
        status = "" if check.ok else " <span class='fail'>failed</span>"
        out.append(f"<p>Checked with the real tool{status}:</p><pre class='check'>$ "
                   f"{html.escape(check.line)}\n{html.escape(check.output)}</pre>")
    out.append("</div>")
    return "".join(out)


def guide_page(cells: dict, checks: dict, meta: dict, runs_table: str) -> str:
    """``cells``: tag -> [(runbook, cell)]; ``checks``: step id -> [Check]."""
    body = [metadata_html(meta), "<h1>Ceph RBD with QEMU and libvirt, the guide regenerated</h1>",
            "<p>Each step of the source guide: what the guide typed (its mistakes noted), the "
            "runbook cell that performs it, that cell's output from this run, and the check by "
            "the real tool afterwards. Then what the guide leaves out.</p>"]
    shown: set = set()
    section = None
    for step in STEPS:
        if step.section != section:
            section = step.section
            body.append(f"<h2>{html.escape(section)}</h2>")
            if section == EXTRA:
                body.append("<p>Attaching disks, clones, flattening, benchmarks, clean-up: "
                            "the runbooks do them; each links to its full page below.</p>")
        body.append(step_html(step, cells, checks, shown))
    body.append("<h2>The runs</h2>" + runs_table)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>rbdnb: the guide, "
            f"regenerated</title><style>{STYLE}</style></head><body>{''.join(body)}"
            f"</body></html>")
    return redact(page)


def scale_page(results: str | os.PathLike, outdir: str | os.PathLike, meta: dict) -> str:
    """``scale.html`` and ``scale.png`` from a ``rbdnb bench scale --output FILE.csv``: the
    cost curves and the table. Returns the page's file name."""
    import pandas as pd
    from ..errors import InvalidArgument
    from ..sandbox.scale import plot
    results, outdir = Path(results), Path(outdir)
    if not results.is_file():
        raise InvalidArgument(f"scale results {results} do not exist: make them with "
                              f"rbdnb bench scale --output {results}")
    df = pd.read_csv(results)
    missing = {"N", "operation", "rbdnb_s", "cli_s", "ratio"} - set(df.columns)
    if missing:
        raise InvalidArgument(f"{results} is not a scale results file: no column "
                              f"{', '.join(sorted(missing))}")
    fig = plot(df, outdir / "scale.png")
    import matplotlib.pyplot as plt
    plt.close(fig)
    shown = df[["N", "operation", "rbdnb_s", "cli_s", "ratio", "rbdnb_ms_per_image",
                "cli_ms_per_image", "peak_rss_mib", "goal", "met", "cli"]]
    body = [metadata_html(meta), "<h1>Scale: rbdnb against the rbd CLI as a pool grows</h1>",
            "<p>Each operation at N images (clones of one golden snapshot), rbdnb and the rbd "
            "CLI back to back in the same run: medians, their ratio (the CLI's time over "
            "rbdnb's) and the cost per image. From <code>rbdnb bench scale</code>.</p>",
            "<img src='scale.png' alt='cost per image against N'>", shown.to_html(index=False)]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>rbdnb: scale</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
    (outdir / "scale.html").write_text(redact(page))
    return "scale.html"
