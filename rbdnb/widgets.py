"""ipywidgets forms for the common tasks, over the same core functions as the magics.

Each form validates as the user types (by asking the core for a dry-run plan,
which checks every value and changes nothing), shows that plan, runs only when
its Run button is clicked, shows a progress bar for long work, and puts the
result or the one-line error in an Output area.

    from rbdnb import widgets
    widgets.create_image_form(cluster)
    widgets.clone_form(cluster)
    widgets.attach_form(cluster, conn)
    widgets.bench_form(cluster, "rbd/bench")
"""

from __future__ import annotations

from typing import Callable

import ipywidgets as w

from .ceph import clones, images
from . import virt
from .ceph.cluster import Cluster
from .errors import InvalidArgument, RbdnbError
from .base.plan import Plan, Result
from .base.secret import redact
from .base.settings import settings

Action = Callable[..., "Result | Plan"]


def form_words(keyword: str, value) -> str | None:
    """How a fix the core names reads in a form: the box to tick."""
    if keyword == "exist_ok":
        return "tick the box for images that exist already"
    if keyword == "confirm":
        return "tick 'confirm'"
    if keyword == "free_space":
        return f"free space with rbdnb.free_space(cluster, ['{value or 'POOL'}/IMAGE'], " \
               f"confirm=True) or %rbd free-space"
    return None


class Form:
    """Fields, a live plan, a Run button, a progress bar and an output area."""

    def __init__(self, title: str, fields: dict[str, w.Widget], action: Action,
                 *, progress: bool = False, after: Callable | None = None):
        self.fields = fields
        self.after = after
        self.action = action
        self.status = w.HTML()
        self.plan = w.Output(layout=w.Layout(border="1px solid #ddd", padding="4px"))
        self.output = w.Output()
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        # Ticked: Run shows the plan and changes nothing. It starts as the shared default
        # (%config RbdnbMagics.dry_run, $RBDNB_DRY_RUN) and follows it when it changes.
        self.dry_run = w.Checkbox(value=settings.dry_run, description="dry run",
                                  indent=False, layout=w.Layout(width="auto"))
        settings.on_dry_run(self._follow_default)
        self.bar = w.IntProgress(min=0, max=1, value=0, description="",
                                 layout=w.Layout(width="60%", visibility="hidden"))
        self.result: Result | None = None
        self.error: str | None = None
        for widget in fields.values():
            widget.observe(self._changed, names="value")
        self.run_button.on_click(self._run)
        self.widget = w.VBox([w.HTML(f"<b>{title}</b>"), *fields.values(), self.status,
                              self.plan, w.HBox([self.run_button, self.dry_run, self.bar]),
                              self.output])
        self._changed()

    def _follow_default(self, value: bool) -> None:
        self.dry_run.value = value

    def values(self) -> dict:
        return {name: widget.value for name, widget in self.fields.items()}

    @staticmethod
    def _show(area: w.Output, obj) -> None:
        # Written straight into the widget, so the form works with or without a live kernel.
        area.outputs = ()
        if isinstance(obj, str):
            area.append_stdout(redact(obj) + "\n")
            return
        data = {"text/plain": redact(str(obj))}
        if hasattr(obj, "_repr_markdown_"):
            data["text/markdown"] = redact(obj._repr_markdown_())
        area.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)

    def _changed(self, *_):
        try:
            plan = self.action(**self.values(), dry_run=True)
        except RbdnbError as exc:
            self.status.value = (f"<span style='color:#b00'>✗ "
                                 f"{_html(redact(exc.worded(form_words)))}</span>")
            self.plan.outputs = ()
            self.run_button.disabled = True
            return
        self.status.value = "<span style='color:#080'>✓ ready</span>"
        self._show(self.plan, plan)
        self.run_button.disabled = False

    def _progress(self, done: int, total: int) -> None:
        self.bar.layout.visibility = "visible"
        self.bar.max = max(1, total)
        self.bar.value = min(done, total)

    def _run(self, *_):
        self.run_button.disabled = True
        self.error = None
        self.bar.value = 0
        try:
            self.result = self.action(**self.values(), dry_run=bool(self.dry_run.value),
                                      progress=self._progress)
            self._show(self.output, self.result)
            value = getattr(self.result, "value", None)
            if value is not None and hasattr(value, "_repr_html_"):
                self.output.append_display_data(value)
            if self.after is not None and isinstance(self.result, Result):
                self.after(self.result, self.output)
        except RbdnbError as exc:
            self.error = redact(exc.worded(form_words))
            self._show(self.output, f"error: {self.error}")
        finally:
            self.run_button.disabled = False

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def create_image_form(cluster: Cluster, pool: str = "rbd") -> Form:
    """Create an RBD image: pool, name, size, re-run safe."""
    def action(pool, name, size, exist_ok, dry_run, progress=None):
        return images.create_image(cluster, f"{pool}/{name}", size, exist_ok=exist_ok,
                                   dry_run=dry_run)
    return Form("Create an RBD image", {
        "pool": w.Text(value=pool, description="pool"),
        "name": w.Text(value="", description="image", placeholder="os-data"),
        "size": w.Text(value="10G", description="size"),
        "exist_ok": w.Checkbox(value=True, description="unchanged if it exists"),
    }, action)


def clone_form(cluster: Cluster, parent: str = "", pattern: str = "") -> Form:
    """Golden-image fan-out: N copy-on-write clones of a snapshot, concurrently."""
    def action(parent, pattern, count, concurrency, exist_ok, dry_run, progress=None):
        return clones.clone_many(cluster, parent, pattern, count=count, concurrency=concurrency,
                                 exist_ok=exist_ok, progress=progress, dry_run=dry_run)
    return Form("Clone a golden image", {
        "parent": w.Text(value=parent, description="snapshot", placeholder="pool/golden@base"),
        "pattern": w.Text(value=pattern, description="names", placeholder="pool/vm-{i:03d}"),
        "count": w.BoundedIntText(value=10, min=1, max=100000, description="count"),
        "concurrency": w.IntSlider(value=16, min=1, max=64, description="in flight"),
        "exist_ok": w.Checkbox(value=True, description="skip clones that exist"),
    }, action, progress=True)


def attach_form(cluster: Cluster, conn, domain: str = "") -> Form:
    """Attach an RBD image to a VM, live and/or in its definition."""
    def action(domain, image, target, live, persistent, dry_run, progress=None):
        return virt.attach_rbd(conn, domain, image, target=target, live=live,
                               persistent=persistent, cluster=cluster, dry_run=dry_run)
    names = sorted(d.name() for d in conn.listAllDomains())
    return Form("Attach an RBD disk to a VM", {
        "domain": w.Dropdown(options=names, value=domain or (names[0] if names else None),
                             description="VM"),
        "image": w.Text(value="", description="image", placeholder="pool/data"),
        "target": w.Text(value="vdb", description="target"),
        "live": w.Checkbox(value=True, description="live (if running)"),
        "persistent": w.Checkbox(value=True, description="in its definition"),
    }, action)


def bench_form(cluster: Cluster, image: str = "") -> Form:
    """Benchmark an image with one or more engines; a table and a plot of the results."""
    from . import bench

    def action(image, engines, io_type, io_size, queue_depth, total, dry_run, progress=None):
        if not image:
            raise InvalidArgument("give the image to benchmark, e.g. rbd/bench")
        if not engines:
            raise InvalidArgument("choose at least one engine")
        args = (cluster, image, list(engines), [io_type], [io_size], [queue_depth])
        if dry_run:
            return bench.matrix(*args, total=total, dry_run=True)
        plan = bench.matrix(*args, total=total, dry_run=True)
        df = bench.matrix(*args, total=total, progress=progress)
        best = df.loc[df["iops"].idxmax()]
        return Result(f"benchmark {image}", io_type != "randread" and io_type != "read",
                      f"{len(df)} runs; best {best['engine']}: {best['iops']:,.0f} IOPS, "
                      f"{best['mib_s']:,.1f} MiB/s", plan, value=df)

    def after(result, output):
        # The plot as a PNG written straight into the output (no kernel formatter needed).
        import base64
        import io
        import matplotlib.pyplot as plt
        fig = bench.plot(result.value, x="queue_depth", metrics=("iops", "mib_s"))
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=90)
        plt.close(fig)
        output.outputs += ({"output_type": "display_data", "metadata": {},
                            "data": {"image/png": base64.b64encode(png.getvalue()).decode(),
                                     "text/plain": "<benchmark plot>"}},)

    return Form("Benchmark an RBD image", {
        "image": w.Text(value=image, description="image", placeholder="pool/bench"),
        "engines": w.SelectMultiple(options=list(bench.ENGINES), value=["native", "rbd"],
                                    description="engines", rows=3),
        "io_type": w.Dropdown(options=list(bench.IO_TYPES), value="randwrite",
                              description="io type"),
        "io_size": w.Text(value="4K", description="io size"),
        "queue_depth": w.BoundedIntText(value=16, min=1, max=bench.MAX_QUEUE_DEPTH,
                                        description="in flight"),
        "total": w.Text(value="64M", description="per run"),
    }, action, progress=True, after=after)
