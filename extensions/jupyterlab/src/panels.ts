// The runs panel (left side bar) and the cluster status item (status bar).
import { Widget } from '@lumino/widgets';

import { IRun, IStatus, fileUrl, request } from './api';

const RUNNING_POLL_MS = 2000;
const IDLE_POLL_MS = 10000;
const STATUS_POLL_MS = 10000;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, v);
  }
  node.textContent = text;
  return node;
}

/** Calls `tick` now and then again and again, sooner while `busy()` says so. */
class Poll {
  constructor(
    private tick: () => Promise<void>,
    private busy: () => boolean,
    private idleMs: number
  ) {}
  start(): void {
    void this.run();
  }
  refresh(): void {
    window.clearTimeout(this.timer);
    void this.run();
  }
  dispose(): void {
    this.disposed = true;
    window.clearTimeout(this.timer);
  }
  private async run(): Promise<void> {
    try {
      await this.tick();
    } finally {
      if (!this.disposed) {
        this.timer = window.setTimeout(
          () => void this.run(),
          this.busy() ? RUNNING_POLL_MS : this.idleMs
        );
      }
    }
  }
  private timer = 0;
  private disposed = false;
}

export class RunsPanel extends Widget {
  constructor(private openNotebook: (path: string) => void) {
    super();
    this.id = 'rbdnb-runs';
    this.addClass('rbdnb-RunsPanel');
    this.title.caption = 'rbdnb runs';
    this.node.appendChild(el('h2', {}, 'Runbook runs'));
    this.error = this.node.appendChild(el('p', { class: 'rbdnb-RunsPanel-error' }));
    this.list = this.node.appendChild(el('table', { class: 'rbdnb-RunsPanel-list' }));
    this.poll = new Poll(() => this.load(), () => this.runs.some(r => r.state === 'running'), IDLE_POLL_MS);
    this.poll.start();
  }

  /** Look again now (after a run was started). */
  refresh(): void {
    this.poll.refresh();
  }

  dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  private async load(): Promise<void> {
    try {
      this.runs = await request<IRun[]>('runs');
      this.error.textContent = '';
    } catch (error) {
      this.error.textContent = `${error}`;
      return;
    }
    this.render();
  }

  private render(): void {
    this.list.textContent = '';
    if (this.runs.length === 0) {
      this.list.appendChild(el('tr')).appendChild(
        el('td', {}, 'No runs yet: open a runbook from the Launcher and press Run.')
      );
      return;
    }
    for (const run of this.runs) {
      const row = this.list.appendChild(
        el('tr', { class: 'rbdnb-Run', 'data-run-id': run.id, 'data-state': run.state })
      );
      const what = row.appendChild(el('td'));
      what.appendChild(el('div', { class: 'rbdnb-Run-name' }, run.runbook));
      what.appendChild(el('div', { class: 'rbdnb-Run-started' }, run.started.replace('T', ' ')));
      const state = row.appendChild(el('td'));
      state.appendChild(el('span', { class: `rbdnb-Run-state rbdnb-state-${run.state.replace(/ /g, '-')}` }, run.state));
      const { done, total } = run.progress;
      if (run.state === 'running' || total > 0) {
        const bar = state.appendChild(el('progress', { class: 'rbdnb-Run-progress', max: String(total || 1) }));
        bar.value = done;
        state.appendChild(el('span', { class: 'rbdnb-Run-cells' }, ` ${done}/${total} cells`));
      }
      if (run.message) {
        state.appendChild(el('div', { class: 'rbdnb-Run-message' }, run.message));
      } else if (run.summary?.steps !== undefined) {
        state.appendChild(
          el('div', { class: 'rbdnb-Run-message' }, `${run.summary.changed} of ${run.summary.steps} steps changed something`)
        );
      }
      const links = row.appendChild(el('td', { class: 'rbdnb-Run-links' }));
      if (run.notebook) {
        const open = links.appendChild(el('a', { href: '#', class: 'rbdnb-Run-notebook' }, 'notebook'));
        const path = run.notebook;
        open.onclick = event => {
          event.preventDefault();
          this.openNotebook(path);
        };
      }
      if (run.html) {
        links.appendChild(el('a', { href: fileUrl(run.html), target: '_blank', class: 'rbdnb-Run-html' }, 'HTML'));
      }
    }
  }

  private runs: IRun[] = [];
  private poll: Poll;
  private list: HTMLTableElement;
  private error: HTMLParagraphElement;
}

export class StatusItem extends Widget {
  constructor() {
    super();
    this.addClass('rbdnb-Status');
    this.node.dataset.level = 'unknown';
    this.node.textContent = 'Ceph …';
    this.poll = new Poll(() => this.load(), () => false, STATUS_POLL_MS);
    this.poll.start();
  }

  dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  private async load(): Promise<void> {
    let status: IStatus;
    try {
      status = await request<IStatus>('status');
    } catch (error) {
      this.node.dataset.level = 'error';
      this.node.textContent = 'Ceph: status unavailable';
      this.node.title = `${error}`;
      return;
    }
    const parts = [`Ceph ${status.reachable ? status.health : 'unreachable'}`];
    if (status.reachable) {
      parts.push(`${(status.used_ratio * 100).toFixed(1)}% used`);
    }
    parts.push(status.libvirt_reachable ? `libvirt ${status.virtualization}` : 'no libvirt');
    const hosts = status.hosts || [];
    const sites = status.sites || [];
    if (hosts.length > 1) {
      const up = hosts.filter(h => h.reachable).length;
      parts.push(up === hosts.length ? `${hosts.length} hosts` : `${up}/${hosts.length} hosts`);
    }
    if (sites.length) {
      const ok = sites.filter(s => s.reachable && s.health === 'HEALTH_OK').length;
      parts.push(ok === sites.length ? `${sites.length + 1} sites` : `${ok + 1}/${sites.length + 1} sites`);
    }
    this.node.dataset.level = status.level;
    this.node.dataset.health = status.health;
    this.node.dataset.hosts = String(Math.max(1, hosts.length));
    this.node.dataset.sites = String(sites.length + 1);
    this.node.textContent = parts.join(' · ');
    this.node.title = [
      status.message,
      status.fsid ? `fsid ${status.fsid}` : '',
      status.conf ? `conf ${status.conf}` : '',
      `libvirt ${status.libvirt_uri}: ${status.libvirt_reachable ? 'reachable' : 'not reachable'}`,
      `guests run with ${status.virtualization}`,
      ...hosts.map((h, i) => `host${i + 1} ${h.uri}: ${h.reachable ? 'reachable' : 'not reachable'}`),
      ...sites.map(s => `site ${s.name} ${s.conf}: ${s.reachable ? s.health : 'unreachable'}`),
      status.stale ? '(an older reading: the cluster is slow to answer)' : ''
    ]
      .filter(Boolean)
      .join('\n');
  }

  private poll: Poll;
}
