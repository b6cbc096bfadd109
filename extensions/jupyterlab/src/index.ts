// rbdnb in JupyterLab: a "Runbooks" section in the Launcher (one card per runbook, a
// parameter form with Run and "Open a copy"), a runs panel, and the cluster's health in
// the status bar. Everything goes through the rbdnb server extension (rbdnb/server).
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { IRun, IRunbook, post, request } from './api';
import { RunbookForm } from './form';
import { RunsPanel, StatusItem } from './panels';

const PLUGIN_ID = '@rbdnb/jupyterlab:plugin';
const COMMANDS = {
  open: 'rbdnb:open-runbook',
  runs: 'rbdnb:show-runs'
};
const RUN_LABEL = 'Run';
const COPY_LABEL = 'Open a copy';

export const runbookIcon = new LabIcon({
  name: 'rbdnb:runbook',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M4 3h12l4 4v14H4z" fill-opacity="0.25"/>' +
    '<path d="M7 8h10v1.5H7zm0 4h10v1.5H7zm0 4h6v1.5H7z"/>' +
    '<circle cx="18" cy="18" r="4" fill="#1976d2"/>' +
    '<path d="M16.8 16.2l3 1.8-3 1.8z" fill="#fff"/></g></svg>'
});

async function openRunbook(
  app: JupyterFrontEnd,
  runbook: IRunbook,
  runs: RunsPanel,
  showRuns: () => void
): Promise<void> {
  let entered: Record<string, string | boolean> = {};
  for (;;) {
    const form = new RunbookForm(runbook, entered);
    const result = await showDialog({
      title: runbook.title,
      body: form,
      buttons: [
        Dialog.cancelButton(),
        Dialog.createButton({ label: COPY_LABEL, className: 'rbdnb-copy' }),
        Dialog.okButton({ label: RUN_LABEL, className: 'rbdnb-run' })
      ]
    });
    const choice = result.button.label;
    if (choice !== RUN_LABEL && choice !== COPY_LABEL) {
      return;
    }
    entered = form.entered();
    try {
      const parameters = form.getValue();
      if (choice === RUN_LABEL) {
        const run = await post<IRun>('runs', { runbook: runbook.name, parameters });
        Notification.info(`${runbook.title}: started (${run.id})`, { autoClose: 4000 });
        runs.refresh();
        showRuns();
      } else {
        const copy = await post<{ path: string }>('copies', { runbook: runbook.name, parameters });
        await app.commands.execute('docmanager:open', { path: copy.path });
      }
      return;
    } catch (error) {
      // Refused before anything ran: say why, then show the form again as it was filled.
      await showErrorMessage(`${runbook.title}: not started`, `${(error as Error).message}`);
    }
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Runbook launcher with parameter forms, run history and cluster status.',
  autoStart: true,
  optional: [ILauncher, IStatusBar, ILayoutRestorer, ICommandPalette],
  activate: async (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    statusBar: IStatusBar | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const openNotebook = (path: string) => void app.commands.execute('docmanager:open', { path });
    const runs = new RunsPanel(openNotebook);
    runs.title.icon = runbookIcon;
    app.shell.add(runs, 'left', { rank: 650 });
    restorer?.add(runs, runs.id); // open again after a reload if it was open
    const showRuns = () => app.shell.activateById(runs.id);
    app.commands.addCommand(COMMANDS.runs, { label: 'Show rbdnb Runs', execute: showRuns });
    palette?.addItem({ command: COMMANDS.runs, category: 'rbdnb' });

    if (statusBar) {
      statusBar.registerStatusItem('@rbdnb/jupyterlab:status', {
        item: new StatusItem(),
        align: 'left',
        rank: 50
      });
    }

    let runbooks: IRunbook[] = [];
    try {
      runbooks = await request<IRunbook[]>('runbooks');
    } catch (error) {
      console.error('rbdnb: the runbooks could not be listed:', error);
      return;
    }
    const byName = new Map(runbooks.map(r => [r.name, r]));
    app.commands.addCommand(COMMANDS.open, {
      label: args => byName.get(args.name as string)?.title ?? 'Runbook',
      caption: args => byName.get(args.name as string)?.description ?? '',
      icon: runbookIcon,
      execute: args => {
        const runbook = byName.get(args.name as string);
        return runbook ? openRunbook(app, runbook, runs, showRuns) : undefined;
      }
    });
    runbooks.forEach((runbook, rank) => {
      launcher?.add({ command: COMMANDS.open, args: { name: runbook.name }, category: 'Runbooks', rank });
      palette?.addItem({ command: COMMANDS.open, args: { name: runbook.name }, category: 'rbdnb' });
    });
  }
};

export default plugin;
