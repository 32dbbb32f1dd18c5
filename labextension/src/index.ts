/**
 * jupyter-qsecure's JupyterLab 4 extension: save-gate dialog and toolbar
 * indicator, secrets panel, status bar item, quantum jobs panel, and review and
 * promotion panel. One plugin per feature (each can be disabled on its own),
 * sharing the REST client and settings through the `IQSecure` token.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  IToolbarWidgetRegistry,
  Notification
} from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { describeError } from './api';
import { makeClient } from './connection';
import { JobsPanel } from './jobspanel';
import { normaliseJobId } from './jobs';
import { ReviewPanel } from './reviewpanel';
import { SaveGateController, SaveGateIndicator, showApiError } from './savegate';
import { insertSecretCall, SecretsPanel } from './secretspanel';
import { CommandIDs, IQSecure, QSecureService } from './service';
import { readSettings } from './settings';
import { QSecureStatus } from './statusitem';

const PLUGIN_ID = 'jupyter-qsecure:plugin';
const CATEGORY = 'QSecure';

/** The shared client, translations and settings. */
const core: JupyterFrontEndPlugin<QSecureService> = {
  id: PLUGIN_ID,
  description: 'The jupyter-qsecure REST client and settings.',
  autoStart: true,
  provides: IQSecure,
  optional: [ITranslator, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    translator: ITranslator | null,
    settingRegistry: ISettingRegistry | null
  ): QSecureService => {
    const trans = (translator ?? nullTranslator).load('jupyter_qsecure');
    const service = new QSecureService(makeClient(app.serviceManager.serverSettings), trans);
    if (settingRegistry) {
      void settingRegistry.load(PLUGIN_ID).then(
        settings => {
          const read = () => {
            service.settings = readSettings(settings.composite as Record<string, unknown>);
          };
          read();
          settings.changed.connect(read);
        },
        reason => console.error('jupyter-qsecure: settings could not be loaded', reason)
      );
    }
    return service;
  }
};

/** Our dialog, one notification and a toolbar indicator when the save gate refuses. */
const saveGate: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-qsecure:save-gate',
  description: 'Shows the save gate refusals: findings dialog, notification, toolbar indicator.',
  autoStart: true,
  requires: [IQSecure, IDocumentManager],
  optional: [INotebookTracker, IToolbarWidgetRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    service: QSecureService,
    docManager: IDocumentManager,
    tracker: INotebookTracker | null,
    toolbarRegistry: IToolbarWidgetRegistry | null,
    palette: ICommandPalette | null
  ): void => {
    const controller = new SaveGateController(app, docManager, service);
    controller.install(app.serviceManager.contents);
    const trans = service.trans;

    const indicator = (panel: NotebookPanel) => new SaveGateIndicator(controller, panel);
    if (toolbarRegistry) {
      toolbarRegistry.addFactory<NotebookPanel>('Notebook', 'qsecure-save-gate', indicator);
    } else if (tracker) {
      tracker.widgetAdded.connect((_, panel) => {
        panel.toolbar.insertItem(10, 'qsecure-save-gate', indicator(panel));
      });
    }
    tracker?.widgetAdded.connect((_, panel) => {
      let path = panel.context.path;
      panel.context.pathChanged.connect((_, newPath) => {
        path = newPath;
      });
      panel.disposed.connect(() => controller.forget(path));
    });

    app.commands.addCommand(CommandIDs.showFindings, {
      label: trans.__('Show Save-Gate Findings'),
      caption: trans.__('Why the current notebook was not saved'),
      isEnabled: () => !!tracker?.currentWidget,
      execute: () => {
        const panel = tracker?.currentWidget;
        if (panel) {
          return controller.openDialog(panel.context.path);
        }
      }
    });
    palette?.addItem({ command: CommandIDs.showFindings, category: CATEGORY });
  }
};

/** The secrets panel and "insert secrets.get". */
const secrets: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-qsecure:secrets',
  description: 'Secrets panel: names and leases, add or rotate a value, insert secrets.get.',
  autoStart: true,
  requires: [IQSecure, INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    service: QSecureService,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ): void => {
    const trans = service.trans;
    const panel = new SecretsPanel({ service, tracker });
    app.shell.add(panel, 'left', { rank: 900 });

    app.commands.addCommand(CommandIDs.openSecrets, {
      label: trans.__('Secrets'),
      caption: trans.__('Open the secrets panel'),
      icon: args => (args.isPalette ? undefined : panel.title.icon),
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.insertSecret, {
      label: args =>
        args.name ? trans.__('Insert secrets.get("%1")', args.name) : trans.__('Insert Secret…'),
      caption: trans.__('Put a secrets.get("NAME") call at the cursor'),
      isEnabled: () => !!tracker.activeCell,
      execute: async args => {
        let name = typeof args.name === 'string' ? args.name : null;
        if (!name) {
          try {
            const names = (await service.client.listSecrets()).secrets.map(s => s.name);
            if (names.length === 0) {
              app.shell.activateById(panel.id);
              Notification.info(trans.__('No secrets yet: add one in the secrets panel.'), {
                autoClose: 5000
              });
              return;
            }
            const choice = await InputDialog.getItem({
              title: trans.__('Insert secret'),
              items: names,
              label: trans.__('Secret')
            });
            name = choice.button.accept ? choice.value : null;
          } catch (err) {
            await showApiError(trans.__('Secrets unavailable'), err, trans);
            return;
          }
        }
        if (name && !insertSecretCall(tracker, name)) {
          Notification.warning(trans.__('Select a code cell of a notebook first.'), {
            autoClose: 5000
          });
        }
      }
    });
    palette?.addItem({ command: CommandIDs.openSecrets, category: CATEGORY });
    palette?.addItem({ command: CommandIDs.insertSecret, category: CATEGORY });
  }
};

/** Identity, environment, credential time left and OpenBao in the status bar. */
const status: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-qsecure:status',
  description: 'Status bar item: identity, environment, credential time left, OpenBao.',
  autoStart: true,
  requires: [IQSecure, INotebookTracker],
  optional: [IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    service: QSecureService,
    tracker: INotebookTracker,
    statusBar: IStatusBar | null
  ): void => {
    if (!statusBar) {
      return;
    }
    const item = new QSecureStatus(
      service,
      tracker,
      () => void app.commands.execute(CommandIDs.openSecrets),
      app.restored
    );
    statusBar.registerStatusItem('jupyter-qsecure:status', { item, align: 'left', rank: 5 });
  }
};

/** The quantum jobs panel and "Verify ledger". */
const jobs: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-qsecure:jobs',
  description:
    'Quantum jobs panel: jobs from the ledger, histogram, provenance, ledger verification.',
  autoStart: true,
  requires: [IQSecure],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    service: QSecureService,
    palette: ICommandPalette | null
  ): void => {
    const trans = service.trans;
    const panel = new JobsPanel(service);
    app.shell.add(panel, 'left', { rank: 901 });

    app.commands.addCommand(CommandIDs.openJobs, {
      label: trans.__('Quantum Jobs'),
      caption: trans.__('Open the quantum jobs panel'),
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.showJob, {
      label: args => (args.id ? trans.__('Show Job %1', args.id) : trans.__('Show Job…')),
      caption: trans.__('Show a job by its job id or decision id'),
      execute: async args => {
        let id = typeof args.id === 'string' ? normaliseJobId(args.id) : null;
        if (!id) {
          const answer = await InputDialog.getText({
            title: trans.__('Show job'),
            label: trans.__('Job id or decision id (32 hex digits)')
          });
          if (!answer.button.accept || !answer.value) {
            return;
          }
          id = normaliseJobId(answer.value);
          if (!id) {
            Notification.error(trans.__('Not a job or decision id: 32 hex digits expected.'), {
              autoClose: 5000
            });
            return;
          }
        }
        app.shell.activateById(panel.id);
        panel.select(id);
      }
    });
    app.commands.addCommand(CommandIDs.verifyLedger, {
      label: trans.__('Verify Audit Ledger'),
      caption: trans.__('Recompute the ledger: leaves, tree, checkpoint signatures'),
      execute: async () => {
        const id = Notification.emit(trans.__('Verifying the audit ledger…'), 'in-progress', {
          autoClose: false
        });
        try {
          const result = await service.client.verifyLedger();
          Notification.update({
            id,
            type: result.ok ? 'success' : 'error',
            autoClose: result.ok ? 5000 : false,
            message: result.ok
              ? trans.__(
                  'Ledger verified: %1 entries, %2 checkpoints.',
                  result.entries,
                  result.checkpoints
                )
              : trans.__('The ledger does NOT verify: %1', result.problems.join(' '))
          });
        } catch (err) {
          Notification.update({
            id,
            type: 'error',
            autoClose: false,
            message: trans.__('Ledger verification failed: %1', describeError(err, trans))
          });
        }
      }
    });
    for (const command of [CommandIDs.openJobs, CommandIDs.showJob, CommandIDs.verifyLedger]) {
      palette?.addItem({ command, category: CATEGORY });
    }
  }
};

/** Review and promotion (shown only where the server has the routes). */
const review: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-qsecure:review',
  description: 'Review and promotion panel: approve, review status, promote.',
  autoStart: true,
  requires: [IQSecure, INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    service: QSecureService,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ): void => {
    const trans = service.trans;
    const panel = new ReviewPanel(service, tracker);
    app.shell.add(panel, 'right', { rank: 900 });
    app.commands.addCommand(CommandIDs.openReview, {
      label: trans.__('Review and Promotion'),
      caption: trans.__('Open the review and promotion panel'),
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: CommandIDs.openReview, category: CATEGORY });
  }
};

export default [core, saveGate, secrets, status, jobs, review];
