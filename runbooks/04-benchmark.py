# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (rbdnb)
#     language: python
#     name: rbdnb
# ---

# %% [markdown]
# # 04 — Benchmark the pool
#
# Measure a pool before VMs go on it, and again on a schedule: the same cases with `rbd bench`, fio's rbd engine and rbdnb's native librbd engine, back to back. Results are a table (saved as CSV and Parquet) and plots; the native engine's figures are compared with `rbd bench`'s from the same run.

# %% tags=["parameters"]
# Parameters (papermill -p NAME VALUE): NAME: "KIND" = DEFAULT  # help (the kinds: rbdnb.runbooks.parameters).
# The defaults run against the rbdnb sandbox.
conf: "file" = None                 # a cluster's ceph.conf; None: the running sandbox
client: "client" = "admin"          # the cephx client that runs these steps
keyring: "file" = None              # its keyring; None: the one the conf names
libvirt_uri: "uri" = None           # None: the sandbox's (qemu:///system as root, qemu:///session otherwise)
dry_run: "bool" = False             # show each step's commands and change nothing
timeout: "int[1,3600]" = 30         # seconds a call to the cluster may wait before it is an error
pool: "pool" = "bench-pool"
image: "image" = "bench"
image_size: "size" = "2G"           # reads and random I/O spread over all of it
engines: "list[engine]" = ["native", "rbd", "fio"]
io_types: "list[io_type]" = ["randwrite", "randread", "write"]
io_sizes: "list[size]" = ["4K", "64K", "4M"]
queue_depths: "list[int[1,256]]" = [1, 16]
total: "size" = "64M"               # I/O per run
results_dir: "dir" = "runs/bench"   # results.csv and results.parquet, stamped per run


# %%
import os, datetime
import ipywidgets as widgets
import rbdnb
from rbdnb import bench
from rbdnb.runbooks import begin
matrix_params = dict(engines=engines, io_types=io_types, io_sizes=io_sizes, queue_depths=queue_depths, total=total)
rb, cluster = begin('04-benchmark', check=lambda: bench.validate(**matrix_params))

# %% [markdown]
# ## The image to measure
#
# A dedicated image, created once; read tests read data, so it is pre-filled once (sequential 4M writes over all of it).

# %%
rb.step(rbdnb.create_pool(cluster, pool, exist_ok=True, dry_run=dry_run))
rb.step(rbdnb.create_image(cluster, f'{pool}/{image}', image_size, exist_ok=True, dry_run=dry_run))
if dry_run:
    rb.step(bench.prefill(cluster, f'{pool}/{image}', dry_run=True))
else:
    filled = bench.prefill(cluster, f'{pool}/{image}')
    rb.note(f'pre-fill {pool}/{image}', False, f'{filled} (a benchmark image: its data does not matter)')

# %% [markdown]
# ## Run the matrix
#
# Every case runs the engines back to back, so they see the same cluster. The commands of the external engines are listed first.

# %%
plan = bench.matrix(cluster, f'{pool}/{image}', **matrix_params, dry_run=True,
                    image_size=image_size if dry_run else None)
if dry_run:
    rb.step(plan)
else:
    bar = widgets.IntProgress(min=0, max=bench.validate(**matrix_params), description='runs')
    display(bar)
    def progress(done, all_):
        bar.max, bar.value = all_, done
    results = bench.matrix(cluster, f'{pool}/{image}', **matrix_params, progress=progress)
    rb.note('benchmark matrix', False, f'{len(results)} runs on {pool}/{image} (a measurement: nothing configured changed)', plan.lines[:3])
    display(results[['engine', 'io_type', 'io_size', 'queue_depth', 'iops', 'mib_s', 'lat_mean_us', 'lat_p99_us']].round(1))

# %% [markdown]
# ## Save the results
#
# One file per run, stamped, so a scheduled runbook builds a history.

# %%
if not dry_run:
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    saved = [bench.save(results, os.path.join(results_dir, f'bench-{stamp}.{ext}')) for ext in ('csv', 'parquet')]
    rb.note('save results', False, ', '.join(saved))

# %% [markdown]
# ## Throughput and IOPS against I/O size
#
# One line per engine (and queue depth).

# %% tags=["guide-x.6"]
if not dry_run:
    for io_type in io_types:
        fig = bench.plot(results[results.io_type == io_type], x='io_size')
        fig.suptitle(io_type)
        fig.tight_layout()

# %% [markdown]
# ## Against queue depth, and latency

# %%
if not dry_run and len(queue_depths) > 1:
    for io_type in io_types:
        fig = bench.plot(results[(results.io_type == io_type) & (results.io_size == results.io_size.iloc[0])], x='queue_depth')
        fig.suptitle(f'{io_type}, {results.io_size.iloc[0]}')
        fig.tight_layout()

# %% [markdown]
# ## rbdnb's native engine against `rbd bench`, same run
#
# The native engine's IOPS as a fraction of `rbd bench`'s for each case (1.0: as fast).

# %%
if not dry_run and 'rbd' in engines and len(engines) > 1:
    display(bench.ratios(results, 'rbd', 'iops'))

# %%
rb.summary()
