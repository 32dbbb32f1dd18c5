/**
 * The save gate in JupyterLab: our dialog instead of "File Save Error" when the
 * server refuses a save because it holds a secret, one notification (not one per
 * autosave) and a red indicator in the notebook toolbar until a save goes through.
 *
 * How it hooks in (JupyterLab 4, no private API):
 * - `contents.save` of the app's contents manager is wrapped. A refusal (422 with
 *   the gate's body) is handed to our controller and re-thrown as an error named
 *   `ModalCancelError`, which JupyterLab's document context and autosave treat as
 *   "cancelled by the user": they show no dialog of their own. The context's
 *   `saveState` then gets `failed`, as for any failed save.
 * - JupyterLab reads the body of a failed request into `ResponseError` and keeps
 *   only its `message`. `ServerConnection.ResponseError.create` is wrapped so that,
 *   for a 422 of the contents API only, a copy of the body is kept on the error.
 * - "Save anyway" saves through the same context (so JupyterLab's own bookkeeping
 *   of the file stays right): the wrapped `save` sends that one save to the
 *   server's `save-anyway` route with the reason.
 */

import * as React from 'react';

import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICodeCellModel } from '@jupyterlab/cells';
import { Dialog, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Contents, ServerConnection } from '@jupyterlab/services';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { describeError, ISaveModel, SECRET_NAME_HTML_PATTERN, SECRET_NAME_PATTERN } from './api';
import {
  cellsWithOutputFindings,
  findingRows,
  findingsKey,
  IFindingRow,
  IParsedRefusal,
  parseRefusal,
  summarize
} from './findings';
import { contentDigest, GateStatus, IGateEffects, SaveGateState } from './gatestate';
import { shieldIcon } from './icons';
import { ITrans } from './trans';
import {
  hasSecretsImport,
  ILiteral,
  literalValue,
  maskedLine,
  pickLiteral,
  replaceOnLine,
  secretsCall,
  sourceLine,
  stringLiterals,
  suggestName,
  withSecretsImport,
  SECRETS_IMPORT
} from './literal';
import { CommandIDs, QSecureService } from './service';

/** Where the body of a refused save is kept on JupyterLab's `ResponseError`. */
const BODY = Symbol.for('jupyter-qsecure:refusal-body');

/** Error names JupyterLab's document context and autosave treat as "cancelled". */
function cancelled(message: string): Error {
  const err = new Error(message);
  err.name = 'ModalCancelError';
  return err;
}

/**
 * Keep a copy of the body of every 422 answer of the contents API on the
 * `ResponseError` JupyterLab makes of it (installed once per page).
 */
export function captureRefusalBodies(): void {
  const ResponseError = ServerConnection.ResponseError as any;
  if (ResponseError[BODY]) {
    return;
  }
  const create = ResponseError.create.bind(ResponseError);
  ResponseError.create = async (response: Response) => {
    if (response.status !== 422 || !/\/api\/contents\//.test(response.url)) {
      return create(response);
    }
    let body: unknown = null;
    try {
      body = await response.clone().json();
    } catch {
      body = null;
    }
    const err = await create(response);
    (err as any)[BODY] = body;
    return err;
  };
  ResponseError[BODY] = true;
}

/** The refusal carried by a failed save, or null for any other failure. */
export function refusalOf(err: unknown): IParsedRefusal | null {
  const response = (err as any)?.response;
  if (!response || response.status !== 422) {
    return null;
  }
  const parsed = parseRefusal((err as any)[BODY]);
  if (parsed) {
    return parsed;
  }
  // A 422 whose body we could not read: still the gate's if it says so.
  const message = String((err as any).message ?? '');
  if (!/secret/i.test(message)) {
    return null;
  }
  return parseRefusal({ message, findings: [] });
}

/** The toolbar indicator: grey when clean, red when refused, amber after "save anyway". */
export class SaveGateIndicator extends ReactWidget {
  constructor(
    private readonly controller: SaveGateController,
    private readonly panel: NotebookPanel
  ) {
    super();
    this.addClass('jp-qsecure-SaveGateIndicator');
    controller.changed.connect(this._onChanged, this);
  }

  dispose(): void {
    this.controller.changed.disconnect(this._onChanged, this);
    super.dispose();
  }

  private _onChanged(_: unknown, path: string): void {
    if (path === this.panel.context.path) {
      this.update();
    }
  }

  render(): JSX.Element {
    const trans = this.controller.trans;
    const path = this.panel.context.path;
    const status = this.controller.status(path);
    const titles: Record<GateStatus, string> = {
      clean: trans.__('Save gate: no secret found at the last save'),
      refused: trans._n(
        'Save gate: the last save was refused (%1 time); click for the findings',
        'Save gate: saves were refused (%1 times); click for the findings',
        this.controller.refusals(path)
      ),
      overridden: trans.__(
        'Save gate: saved anyway with a reason; the notebook still holds a secret'
      )
    };
    return (
      <button
        type="button"
        className={`jp-qsecure-gate jp-qsecure-gate-${status}`}
        title={titles[status]}
        aria-label={titles[status]}
        onClick={() => void this.controller.openDialog(path)}
      >
        <shieldIcon.react tag="span" className="jp-qsecure-gate-icon" />
        {status === 'refused' && (
          <span className="jp-qsecure-gate-label">{trans.__('Not saved')}</span>
        )}
      </button>
    );
  }
}

/** The save gate's behaviour in the browser (see the module docstring). */
export class SaveGateController {
  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly docManager: IDocumentManager,
    private readonly service: QSecureService
  ) {
    // Saves the user asked for: the dialog opens for them; autosaves get a notification.
    app.commands.commandExecuted.connect((_, args) => {
      if (args.id === 'docmanager:save' || args.id === 'docmanager:save-all') {
        const paths = args.id === 'docmanager:save-all' ? null : this.currentPath();
        const token = { paths };
        this._manual.add(token);
        void args.result.finally(() => this._manual.delete(token));
      }
    });
    Notification.manager.changed.connect((_, change) => {
      if (change.type !== 'removed') {
        return;
      }
      for (const [path, id] of this._notifications) {
        if (id === change.notification.id) {
          this._notifications.delete(path);
          this.state.notificationDismissed(path);
        }
      }
    });
  }

  readonly state = new SaveGateState();

  get trans() {
    return this.service.trans;
  }

  /** Emits the path whose gate status changed. */
  readonly changed = new Signal<this, string>(this);

  status(path: string): GateStatus {
    return this.state.status(path);
  }

  refusals(path: string): number {
    return this.state.refusals(path);
  }

  /** Wrap the contents manager's `save` (see the module docstring). */
  install(contents: Contents.IManager): void {
    captureRefusalBodies();
    const save = contents.save.bind(contents);
    (contents as any).save = async (
      path: string,
      options: Partial<Contents.IModel> = {}
    ): Promise<Contents.IModel> => {
      if (contents.driveName(path) !== '') {
        return save(path, options); // other drives do not pass through this server's gate
      }
      const manual = this.isManual(path);
      const override = this._overrides.get(path);
      if (override !== undefined) {
        this._overrides.delete(path);
        return this.saveAnyway(path, override, options);
      }
      const digest = contentDigest(JSON.stringify(options.content ?? null));
      if (!this.state.shouldSend(path, digest, manual)) {
        this.afterCancel(path);
        throw cancelled(this.trans.__('not saved: unchanged since the save gate refused it'));
      }
      let model: Contents.IModel;
      try {
        model = await save(path, options);
      } catch (err) {
        const refusal = refusalOf(err);
        if (refusal === null) {
          throw err;
        }
        this._refusals.set(path, refusal);
        this.apply(
          path,
          this.state.refused(path, {
            findingsKey: findingsKey(refusal.refusal.findings),
            contentDigest: digest,
            manual
          })
        );
        this.afterCancel(path);
        throw cancelled(refusal.refusal.message);
      }
      if (this.state.status(path) !== 'clean' || this._refusals.has(path)) {
        this._refusals.delete(path);
        this.apply(path, this.state.saved(path));
      }
      return model;
    };
    this.docManager.services.contents.fileChanged.connect((_, change) => {
      if (change.type === 'rename' && change.oldValue?.path && change.newValue?.path) {
        this.state.renamed(change.oldValue.path, change.newValue.path);
        const refusal = this._refusals.get(change.oldValue.path);
        if (refusal) {
          this._refusals.delete(change.oldValue.path);
          this._refusals.set(change.newValue.path, refusal);
        }
      }
    });
  }

  /** A notebook was closed: forget its refusal. */
  forget(path: string): void {
    const id = this._notifications.get(path);
    if (id) {
      Notification.dismiss(id);
      this._notifications.delete(path);
    }
    this.state.forget(path);
    this._refusals.delete(path);
  }

  /** Show the findings of the last refusal of `path` (indicator, notification, command). */
  async openDialog(path: string): Promise<void> {
    const refusal = this._refusals.get(path);
    if (!refusal) {
      const message =
        this.state.status(path) === 'overridden'
          ? this.trans.__(
              'The last save went through with "Save anyway". Save again to check the notebook.'
            )
          : this.trans.__('No save of this notebook was refused. Save it to check it again.');
      Notification.info(message, { autoClose: 5000 });
      return;
    }
    this.apply(path, this.state.dialogOpened(path));
    await this.showRefusal(path, refusal);
  }

  // ---- effects ------------------------------------------------------------------------

  private apply(path: string, effects: IGateEffects): void {
    const refusal = this._refusals.get(path);
    const trans = this.trans;
    const name = path.split('/').pop() ?? path;
    const text = refusal
      ? trans.__(
          '%1 was not saved: %2',
          name,
          summarize(findingRows(refusal.refusal.findings, null, trans), trans)
        )
      : '';
    const id = this._notifications.get(path);
    switch (effects.notification) {
      case 'show':
        if (this.service.settings.autosaveNotification && refusal) {
          this._notifications.set(
            path,
            Notification.error(text, {
              autoClose: false,
              actions: [
                {
                  label: trans.__('Show findings'),
                  callback: () => void this.openDialog(path),
                  displayType: 'accent'
                }
              ]
            })
          );
        }
        break;
      case 'update':
        if (id && refusal) {
          Notification.update({ id, message: text, type: 'error', autoClose: false });
        }
        break;
      case 'dismiss':
        if (id) {
          this._notifications.delete(path);
          Notification.dismiss(id);
        }
        break;
      default:
        break;
    }
    this.changed.emit(path);
    if (effects.showDialog && refusal) {
      void this.showRefusal(path, refusal);
    }
  }

  /** JupyterLab's context cancelled quietly; tell its listeners the save failed. */
  private afterCancel(path: string): void {
    const context = this.contextOf(path);
    if (context) {
      // After the context has handled the cancellation (it emits nothing itself).
      void Promise.resolve().then(() => (context.saveState as Signal<any, any>).emit('failed'));
    }
  }

  private isManual(path: string): boolean {
    for (const token of this._manual) {
      if (token.paths === null || token.paths === path) {
        return true;
      }
    }
    return false;
  }

  private currentPath(): string | null {
    const widget = this.app.shell.currentWidget;
    return widget ? (this.docManager.contextForWidget(widget)?.path ?? null) : null;
  }

  private contextOf(path: string): DocumentRegistry.Context | undefined {
    const widget = this.docManager.findWidget(path);
    return widget ? this.docManager.contextForWidget(widget) : undefined;
  }

  private notebookOf(path: string): NotebookPanel | null {
    const widget = this.docManager.findWidget(path);
    return widget instanceof NotebookPanel ? widget : null;
  }

  // ---- the dialog ---------------------------------------------------------------------

  private async showRefusal(path: string, parsed: IParsedRefusal): Promise<void> {
    if (this._dialogs.has(path)) {
      return;
    }
    this._dialogs.add(path);
    const trans = this.trans;
    const panel = this.notebookOf(path);
    const cellIds = panel ? panel.content.widgets.map(cell => cell.model.id ?? null) : null;
    const rows = findingRows(parsed.refusal.findings, cellIds, trans);
    let chosen: (() => Promise<void>) | null = null;
    const dialog = new Dialog<void>({
      title: trans.__('Not saved: %1 holds a secret', path.split('/').pop() ?? path),
      body: new FindingsBody({
        parsed,
        rows,
        trans,
        notebook: panel !== null,
        choose: action => {
          chosen = action;
          dialog.resolve(0);
        },
        actions: {
          goTo: row => this.goTo(path, row),
          clearOutputs: cells => this.clearOutputs(path, cells),
          replace: row => this.replace(path, row)
        }
      }),
      buttons: [
        Dialog.cancelButton({ label: trans.__('Close') }),
        ...(parsed.refusal.override.allowed
          ? [Dialog.warnButton({ label: trans.__('Save anyway…') })]
          : [])
      ],
      defaultButton: 0
    });
    dialog.addClass('jp-qsecure-RefusalDialog');
    try {
      const result = await dialog.launch();
      if (chosen !== null) {
        await (chosen as () => Promise<void>)();
      } else if (result.button.displayType === 'warn') {
        await this.askSaveAnyway(path, parsed);
      }
    } finally {
      this._dialogs.delete(path);
      this.state.dialogClosed(path);
    }
  }

  // ---- actions ------------------------------------------------------------------------

  private async goTo(path: string, row: IFindingRow): Promise<void> {
    const panel = this.notebookOf(path);
    if (!panel || row.cellIndex === null) {
      return;
    }
    this.app.shell.activateById(panel.id);
    const notebook = panel.content;
    const cell = notebook.widgets[row.cellIndex];
    if (!cell) {
      return;
    }
    notebook.deselectAll();
    notebook.activeCellIndex = row.cellIndex;
    await notebook.scrollToCell(cell);
    if (row.finding.where === 'source' && cell.editor) {
      notebook.mode = 'edit';
      cell.editor.setCursorPosition({ line: row.finding.line - 1, column: 0 });
      cell.editor.focus();
    }
  }

  private async clearOutputs(path: string, cells: number[]): Promise<void> {
    const panel = this.notebookOf(path);
    if (!panel) {
      return;
    }
    for (const index of cells) {
      const cell = panel.content.model?.cells.get(index);
      if (cell && cell.type === 'code') {
        const code = cell as ICodeCellModel;
        code.outputs.clear();
        code.executionCount = null;
      }
    }
    Notification.success(
      this.trans._n(
        'Cleared the outputs of cell %2. Save to check the notebook again.',
        'Cleared the outputs of cells %2. Save to check the notebook again.',
        cells.length,
        cells.map(i => i + 1).join(', ')
      ),
      { autoClose: 5000 }
    );
  }

  /**
   * Store the literal on the finding's line as a secret (through the secrets
   * panel's service), then put `secrets.get("NAME")` where it was.
   */
  private async replace(path: string, row: IFindingRow): Promise<void> {
    const trans = this.trans;
    const panel = this.notebookOf(path);
    const cellModel =
      panel && row.cellIndex !== null ? panel.content.model?.cells.get(row.cellIndex) : null;
    if (!panel || !cellModel) {
      return;
    }
    const line = sourceLine(cellModel.sharedModel.getSource(), row.finding.line);
    const literals = line === null ? [] : stringLiterals(line);
    const matches = await digestMatches(literals, row.finding.hashed_secret);
    const picked = pickLiteral(literals, matches);
    if (line === null || picked === null) {
      await showErrorMessage(
        trans.__('No string to replace'),
        trans.__(
          'Line %1 of cell %2 has no string literal to replace. Go to the cell, remove the value, and store it in the secrets panel instead.',
          row.finding.line,
          (row.cellIndex ?? 0) + 1
        )
      );
      return;
    }
    const value = literalValue(picked.literal);
    if (!value.ok) {
      const why = {
        fstring: trans.__('it is an f-string (its value is computed)'),
        escapes: trans.__('it has escape sequences (the stored value would differ)'),
        empty: trans.__('it is empty')
      }[value.reason];
      await showErrorMessage(
        trans.__('Cannot replace this string'),
        trans.__(
          'The string on line %1 of cell %2 cannot be replaced automatically: %3. Store the value in the secrets panel and edit the cell by hand.',
          row.finding.line,
          (row.cellIndex ?? 0) + 1,
          why
        )
      );
      return;
    }
    const name = await askSecretName(
      trans,
      suggestName(line, picked.literal, row.finding.type),
      maskedLine(line, literals, picked.index),
      row
    );
    if (name === null) {
      return;
    }
    let version: number | null = null;
    try {
      version = (await this.service.storeSecret(name, value.value)).version;
    } catch (err) {
      await showApiError(trans.__('The secret was not stored'), err, trans);
      return;
    }
    // The cell may have changed while the dialog was open: replace only if the
    // literal is still where it was, with the same text.
    const source = cellModel.sharedModel.getSource();
    const now = sourceLine(source, row.finding.line);
    if (
      now === null ||
      now.slice(picked.literal.start, picked.literal.end) !==
        line.slice(picked.literal.start, picked.literal.end)
    ) {
      await showErrorMessage(
        trans.__('The cell changed'),
        trans.__(
          'The secret %1 was stored, but line %2 of cell %3 changed meanwhile, so it was not replaced. Put %4 there by hand.',
          name,
          row.finding.line,
          (row.cellIndex ?? 0) + 1,
          secretsCall(name, value.bytes)
        )
      );
      return;
    }
    let updated = replaceOnLine(
      source,
      row.finding.line,
      picked.literal,
      secretsCall(name, value.bytes)
    );
    const cells = panel.content.model!.cells;
    const sources: string[] = [];
    for (let i = 0; i < cells.length; i++) {
      sources.push(i === row.cellIndex ? updated : cells.get(i).sharedModel.getSource());
    }
    let importCell = false;
    if (!hasSecretsImport(sources)) {
      const withImport = withSecretsImport(updated);
      if (withImport !== null) {
        updated = withImport;
      } else {
        importCell = true;
      }
    }
    cellModel.sharedModel.setSource(updated);
    if (importCell) {
      panel.content.model!.sharedModel.insertCell(row.cellIndex!, {
        cell_type: 'code',
        source: SECRETS_IMPORT
      });
    }
    void this.app.commands.execute(CommandIDs.openSecrets);
    Notification.success(
      trans.__(
        'Stored %1 (version %2) and replaced the string in cell %3 with %4. Save to check the notebook again.',
        name,
        version ?? '?',
        (row.cellIndex ?? 0) + 1,
        secretsCall(name, value.bytes)
      ),
      { autoClose: 8000 }
    );
  }

  private async askSaveAnyway(path: string, parsed: IParsedRefusal): Promise<void> {
    const trans = this.trans;
    const min = parsed.refusal.override.reason_min_length;
    const reason = await askReason(trans, min);
    if (reason === null) {
      return;
    }
    const context = this.contextOf(path);
    if (!context) {
      return;
    }
    this._overrides.set(path, reason);
    try {
      await context.save();
    } catch (err) {
      if ((err as Error).name !== 'ModalCancelError') {
        throw err;
      }
    } finally {
      this._overrides.delete(path);
    }
  }

  /** The one save that goes to `save-anyway` (see {@link askSaveAnyway}). */
  private async saveAnyway(
    path: string,
    reason: string,
    options: Partial<Contents.IModel>
  ): Promise<Contents.IModel> {
    const refusal = this._refusals.get(path);
    const model: ISaveModel = {
      type: options.type,
      format: options.format,
      content: options.content
    };
    try {
      const saved = await this.service.client.saveAnyway(path, reason, model);
      const { qsecure, ...contentsModel } = saved;
      this.apply(path, this.state.overridden(path, findingsKey(refusal?.refusal.findings ?? [])));
      this._refusals.delete(path);
      Notification.warning(
        qsecure?.message ?? this.trans.__('Saved anyway; the reason is in the audit ledger.'),
        { autoClose: 8000 }
      );
      return contentsModel as unknown as Contents.IModel;
    } catch (err) {
      await showApiError(this.trans.__('Not saved'), err, this.trans);
      this.afterCancel(path);
      throw cancelled(String((err as Error).message));
    }
  }

  private _refusals = new Map<string, IParsedRefusal>();
  private _notifications = new Map<string, string>();
  private _overrides = new Map<string, string>();
  private _manual = new Set<{ paths: string | null }>();
  private _dialogs = new Set<string>();
}

/** Indices of the literals whose value has the finding's SHA-256 (when it is one). */
async function digestMatches(literals: ILiteral[], digest: string | null): Promise<Set<number>> {
  const found = new Set<number>();
  const subtle = typeof crypto !== 'undefined' ? crypto.subtle : undefined;
  if (!digest || !/^[0-9a-f]{64}$/.test(digest) || !subtle) {
    return found;
  }
  for (let i = 0; i < literals.length; i++) {
    const value = literalValue(literals[i]);
    if (!value.ok) {
      continue;
    }
    const hash = await subtle.digest('SHA-256', new TextEncoder().encode(value.value));
    const hex = Array.from(new Uint8Array(hash), b => b.toString(16).padStart(2, '0')).join('');
    if (hex === digest) {
      found.add(i);
    }
  }
  return found;
}

export async function showApiError(title: string, err: unknown, trans: ITrans): Promise<void> {
  await showErrorMessage(title, describeError(err, trans));
}

// ---- dialog bodies ----------------------------------------------------------------------

interface IFindingsBodyProps {
  parsed: IParsedRefusal;
  rows: IFindingRow[];
  trans: QSecureService['trans'];
  notebook: boolean;
  choose: (action: () => Promise<void>) => void;
  actions: {
    goTo: (row: IFindingRow) => Promise<void>;
    clearOutputs: (cells: number[]) => Promise<void>;
    replace: (row: IFindingRow) => Promise<void>;
  };
}

class FindingsBody extends ReactWidget {
  constructor(private readonly props: IFindingsBodyProps) {
    super();
    this.addClass('jp-qsecure-Findings');
  }

  render(): JSX.Element {
    const { parsed, rows, trans, choose, actions } = this.props;
    const outputCells = cellsWithOutputFindings(rows);
    return (
      <div>
        <p className="jp-qsecure-Findings-lead">
          {trans.__(
            'The save gate found what looks like a secret. Nothing was written to disk; values are never shown here.'
          )}
        </p>
        <table className="jp-qsecure-Findings-table">
          <thead>
            <tr>
              <th>{trans.__('Where')}</th>
              <th>{trans.__('In')}</th>
              <th>{trans.__('Type')}</th>
              <th>{trans.__('Actions')}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row, i) => (
              <tr key={i} data-cell={row.cellIndex ?? ''}>
                <td className="jp-qsecure-Findings-location">{row.location}</td>
                <td>{row.where}</td>
                <td>{row.finding.type}</td>
                <td className="jp-qsecure-Findings-actions">
                  {row.actions.goTo && (
                    <button
                      className="jp-mod-styled jp-mod-reject"
                      onClick={() => choose(() => actions.goTo(row))}
                    >
                      {trans.__('Go to cell')}
                    </button>
                  )}
                  {row.actions.clearOutputs && (
                    <button
                      className="jp-mod-styled jp-mod-reject"
                      onClick={() => choose(() => actions.clearOutputs([row.cellIndex!]))}
                    >
                      {trans.__('Clear outputs')}
                    </button>
                  )}
                  {row.actions.replace && (
                    <button
                      className="jp-mod-styled jp-mod-accept"
                      onClick={() => choose(() => actions.replace(row))}
                      title={trans.__(
                        'Store the value as a secret and use secrets.get("NAME") instead'
                      )}
                    >
                      {trans.__('Store as secret & replace')}
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {parsed.unreadable > 0 && (
          <p className="jp-qsecure-Findings-note">
            {trans._n(
              '%1 more finding could not be read; the server log names it.',
              '%1 more findings could not be read; the server log names them.',
              parsed.unreadable
            )}
          </p>
        )}
        {rows.length === 0 && <p>{parsed.refusal.message}</p>}
        {outputCells.length > 1 && (
          <p>
            <button
              className="jp-mod-styled jp-mod-reject"
              onClick={() => choose(() => actions.clearOutputs(outputCells))}
            >
              {trans.__('Clear the outputs of all these cells')}
            </button>
          </p>
        )}
        {parsed.refusal.recovery_id && (
          <p className="jp-qsecure-Findings-note">
            {trans.__('An encrypted recovery copy was kept: %1', parsed.refusal.recovery_id)}
          </p>
        )}
      </div>
    );
  }
}

/** Ask for the name to store the value under. Null when cancelled. */
async function askSecretName(
  trans: QSecureService['trans'],
  suggestion: string,
  masked: string,
  row: IFindingRow
): Promise<string | null> {
  const body = new NameBody(trans, suggestion, masked, row);
  const result = await showDialog({
    title: trans.__('Store as a secret'),
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: trans.__('Store and replace') })],
    focusNodeSelector: 'input'
  });
  if (!result.button.accept) {
    return null;
  }
  const name = body.value.trim();
  if (!SECRET_NAME_PATTERN.test(name)) {
    await showErrorMessage(
      trans.__('Not a secret name'),
      trans.__('A name starts with a letter, then letters, digits, _ or - (at most 64 characters).')
    );
    return null;
  }
  return name;
}

class NameBody extends Widget {
  constructor(
    trans: QSecureService['trans'],
    suggestion: string,
    masked: string,
    row: IFindingRow
  ) {
    super();
    this.addClass('jp-qsecure-NameBody');
    const lead = document.createElement('p');
    lead.textContent = trans.__(
      'The string on %1 goes to the server (OpenBao), and the cell will read it with secrets.get:',
      row.location
    );
    const code = document.createElement('pre');
    code.className = 'jp-qsecure-masked';
    code.textContent = masked;
    const label = document.createElement('label');
    label.textContent = trans.__('Secret name');
    this._input = document.createElement('input');
    this._input.className = 'jp-mod-styled';
    this._input.value = suggestion;
    this._input.pattern = SECRET_NAME_HTML_PATTERN;
    this._input.spellcheck = false;
    label.appendChild(this._input);
    this.node.append(lead, code, label);
  }

  get value(): string {
    return this._input.value;
  }

  private _input: HTMLInputElement;
}

/** Ask for the written reason of a "save anyway". Null when cancelled or too short. */
async function askReason(
  trans: QSecureService['trans'],
  minLength: number
): Promise<string | null> {
  const body = new ReasonBody(trans, minLength);
  const result = await showDialog({
    title: trans.__('Save anyway'),
    body,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: trans.__('Save anyway') })],
    focusNodeSelector: 'textarea'
  });
  if (!result.button.accept) {
    return null;
  }
  const reason = body.value.trim();
  if (reason.replace(/\s/g, '').length < minLength) {
    await showErrorMessage(
      trans.__('Not saved'),
      trans.__('The reason needs at least %1 characters (without spaces).', minLength)
    );
    return null;
  }
  return reason;
}

class ReasonBody extends Widget {
  constructor(trans: QSecureService['trans'], minLength: number) {
    super();
    this.addClass('jp-qsecure-ReasonBody');
    const lead = document.createElement('p');
    lead.textContent = trans.__(
      'The notebook will be saved with the secret in it. Say why; the reason, your name and the findings (never the value) go into the audit ledger.'
    );
    this._text = document.createElement('textarea');
    this._text.className = 'jp-mod-styled';
    this._text.rows = 3;
    this._text.placeholder = trans.__('At least %1 characters', minLength);
    this.node.append(lead, this._text);
  }

  get value(): string {
    return this._text.value;
  }

  private _text: HTMLTextAreaElement;
}
