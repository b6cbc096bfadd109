"""Plots of benchmark results (matplotlib through pandas), one line per engine."""

from __future__ import annotations

from ..errors import InvalidArgument

_AXES = {"io_size": ("io_size_bytes", "I/O size"), "queue_depth": ("queue_depth", "queue depth")}
_METRICS = {"iops": "IOPS", "mib_s": "MiB/s", "lat_mean_us": "mean latency (µs)",
            "lat_p99_us": "p99 latency (µs)"}


def _pick_x(df) -> str:
    if df["io_size_bytes"].nunique() > 1:
        return "io_size"
    return "queue_depth"


def plot(df, ax=None, *, x: str | None = None, metrics=("iops", "mib_s", "lat_p99_us")):
    """Plot results: each metric against I/O size or queue depth, one line per engine.

    ``x`` is ``"io_size"`` or ``"queue_depth"`` (default: whichever varies, I/O
    size first). Lines are split by io type too when several are present, and
    repeated runs are averaged. With ``ax`` (one metric) the plot goes there and
    the axes are returned; else a new figure with one panel per metric is
    returned. Latency panels are skipped when no engine gave latencies.
    """
    import matplotlib.pyplot as plt
    if df is None or len(df) == 0:
        raise InvalidArgument("there are no results to plot")
    for column in ("engine", "io_type", "io_size_bytes", "queue_depth"):
        if column not in df.columns:
            raise InvalidArgument(f"results have no column {column!r}: not benchmark results")
    x = x or _pick_x(df)
    if x not in _AXES:
        raise InvalidArgument(f"x {x!r} is not valid: expected io_size or queue_depth")
    metrics = [m for m in metrics if m in _METRICS]
    for m in list(metrics):
        if m.startswith("lat") and (m not in df.columns or df[m].isna().all()):
            metrics.remove(m)
    if not metrics:
        raise InvalidArgument("none of the metrics asked for is in the results")
    column, label = _AXES[x]
    other = "queue_depth" if x == "io_size" else "io_size"
    split = ["engine"] + [c for c in ("io_type", other) if df[c].nunique() > 1]
    fixed = [c for c in ("io_size", "queue_depth") if c != x and df[c].nunique() == 1]
    subtitle = ", ".join(f"{c.replace('_', ' ')} {df[c].iloc[0]}" for c in fixed)
    if ax is not None:
        metrics = metrics[:1]
        axes = [ax]
        fig = ax.figure
    else:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6),
                                 squeeze=False)
        axes = list(axes[0])
    for metric, axis in zip(metrics, axes):
        table = df.pivot_table(index=column, columns=split, values=metric, aggfunc="mean")
        table = table.sort_index()
        if table.columns.nlevels > 1:
            names = list(table.columns.names)
            table.columns = [" ".join(f"QD{v}" if n == "queue_depth" else str(v)
                                      for n, v in zip(names, c)) for c in table.columns]
        table.plot(ax=axis, marker="o")
        axis.set_xlabel(label)
        axis.set_ylabel(_METRICS[metric])
        axis.set_title(_METRICS[metric] + (f" ({subtitle})" if subtitle else ""), fontsize=9)
        if x == "io_size":
            axis.set_xscale("log", base=2)
            ticks = list(table.index)
            axis.set_xticks(ticks)
            axis.set_xticklabels([_size_label(t) for t in ticks])
        else:
            axis.set_xticks(list(table.index))
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    return ax if ax is not None else fig


def _size_label(nbytes: int) -> str:
    from ..base.units import format_size
    return format_size(int(nbytes))
