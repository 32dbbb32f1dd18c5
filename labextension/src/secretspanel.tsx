/**
 * The secrets panel (left sidebar): the environment's secret names with their
 * lease state, a form to add or rotate a value (a password field; the value goes
 * to the server in one PUT and is dropped from the page right after), and
 * "insert" to put `secrets.get("NAME")` at the cursor of the active cell.
 *
 * The value is never written to the browser's storage, to the notebook, or to
 * any log: it lives in the password field until the request is sent.
 */

import * as React from 'react';

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ReactWidget, refreshIcon, addIcon } from '@jupyterlab/ui-components';

import {
  describeError,
  ISecretEntry,
  ISecretList,
  SECRET_NAME_HTML_PATTERN,
  SECRET_NAME_PATTERN
} from './api';
import { keyIcon } from './icons';
import { hasSecretsImport, secretsCall, withSecretsImport, SECRETS_IMPORT } from './literal';
import { showApiError } from './savegate';
import { QSecureService } from './service';
import { formatTimeLeft } from './timeleft';

/** Put `secrets.get("NAME")` at the cursor of the active cell (and the import if missing). */
export function insertSecretCall(tracker: INotebookTracker, name: string): boolean {
  const panel = tracker.currentWidget;
  const cell = tracker.activeCell;
  const model = panel?.content.model;
  if (!panel || !cell || !model || !cell.editor || !SECRET_NAME_PATTERN.test(name)) {
    return false;
  }
  const editor = cell.editor;
  const position = editor.getCursorPosition();
  const offset = editor.getOffsetAt(position);
  const call = secretsCall(name);
  const shared = cell.model.sharedModel;
  shared.updateSource(offset, offset, call);
  const sources: string[] = [];
  for (let i = 0; i < model.cells.length; i++) {
    sources.push(model.cells.get(i).sharedModel.getSource());
  }
  if (!hasSecretsImport(sources)) {
    const updated = withSecretsImport(shared.getSource());
    if (updated !== null) {
      shared.updateSource(0, 0, SECRETS_IMPORT + '\n');
      editor.setCursorPosition(
        editor.getPositionAt(offset + SECRETS_IMPORT.length + 1 + call.length)!
      );
    } else {
      model.sharedModel.insertCell(panel.content.activeCellIndex, {
        cell_type: 'code',
        source: SECRETS_IMPORT
      });
    }
  } else {
    editor.setCursorPosition(editor.getPositionAt(offset + call.length)!);
  }
  editor.focus();
  return true;
}

function leaseText(entry: ISecretEntry, trans: QSecureService['trans']): string {
  if (entry.leases.length === 0) {
    return trans.__('not held by a kernel');
  }
  const left = entry.leases
    .map(lease => lease.seconds_left)
    .filter((s): s is number => typeof s === 'number');
  const soonest = left.length ? Math.min(...left) : null;
  return trans._n(
    'held by %1 kernel, %2 left',
    'held by %1 kernels, soonest %2 left',
    entry.leases.length,
    formatTimeLeft(soonest, trans)
  );
}

interface IPanelProps {
  service: QSecureService;
  tracker: INotebookTracker;
}

function SecretsView({ service, tracker }: IPanelProps): JSX.Element {
  const trans = service.trans;
  const [list, setList] = React.useState<ISecretList | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const [name, setName] = React.useState('');
  const [rotating, setRotating] = React.useState<string | null>(null);
  const [message, setMessage] = React.useState<string | null>(null);
  const valueRef = React.useRef<HTMLInputElement>(null);

  const refresh = React.useCallback(async () => {
    try {
      setList(await service.client.listSecrets());
      setError(null);
    } catch (err) {
      setError(describeError(err, trans));
    }
  }, [service, trans]);

  React.useEffect(() => {
    void refresh();
    const onChange = () => void refresh();
    service.secretsChanged.connect(onChange);
    return () => {
      service.secretsChanged.disconnect(onChange);
    };
  }, [service, refresh]);

  const store = async (event: React.FormEvent) => {
    event.preventDefault();
    const input = valueRef.current;
    const target = (rotating ?? name).trim();
    if (!input || !SECRET_NAME_PATTERN.test(target) || input.value.length === 0) {
      setMessage(
        trans.__(
          'A name starts with a letter, then letters, digits, _ or - (at most 64); the value must not be empty.'
        )
      );
      return;
    }
    const value = input.value;
    input.value = ''; // out of the page before the request goes out
    setBusy(true);
    try {
      const stored = await service.storeSecret(target, value);
      setMessage(
        stored.created
          ? trans.__('Stored %1 (version %2).', stored.name, stored.version ?? '?')
          : trans.__(
              'Rotated %1 (version %2). Kernels get it at their next execution.',
              stored.name,
              stored.version ?? '?'
            )
      );
      setName('');
      setRotating(null);
    } catch (err) {
      await showApiError(trans.__('The secret was not stored'), err, trans);
    } finally {
      setBusy(false);
    }
  };

  const remove = async (entry: ISecretEntry) => {
    const answer = await showDialog({
      title: trans.__('Delete %1?', entry.name),
      body: trans.__(
        'Every version of %1 is deleted from OpenBao. Kernels that hold it keep it until they restart.',
        entry.location
      ),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: trans.__('Delete') })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await service.deleteSecret(entry.name);
      setMessage(trans.__('Deleted %1.', entry.name));
    } catch (err) {
      await showApiError(trans.__('The secret was not deleted'), err, trans);
    }
  };

  const insert = (entry: ISecretEntry) => {
    if (!insertSecretCall(tracker, entry.name)) {
      setMessage(trans.__('Select a code cell of a notebook first, then insert.'));
    }
  };

  const writable = list?.writable ?? false;
  return (
    <div className="jp-qsecure-Secrets">
      <div className="jp-qsecure-panel-header">
        <h2>{trans.__('Secrets')}</h2>
        {list && (
          <span className={`jp-qsecure-env jp-qsecure-env-${list.environment}`}>
            {list.environment}
          </span>
        )}
        <button
          className="jp-qsecure-icon-button"
          title={trans.__('Refresh')}
          aria-label={trans.__('Refresh')}
          onClick={() => void refresh()}
        >
          <refreshIcon.react tag="span" />
        </button>
      </div>
      {error && <div className="jp-qsecure-error">{error}</div>}
      {list && (
        <p className="jp-qsecure-muted">
          {trans.__(
            'Stored under %1; read in a qsecure kernel with secrets.get("NAME").',
            list.prefix
          )}
        </p>
      )}
      {list && list.secrets.length === 0 && (
        <p className="jp-qsecure-muted">{trans.__('No secrets yet: add one below.')}</p>
      )}
      <ul className="jp-qsecure-secret-list">
        {list?.secrets.map(entry => (
          <li key={entry.name} className="jp-qsecure-secret">
            <div className="jp-qsecure-secret-name">
              <keyIcon.react tag="span" />
              <code>{entry.name}</code>
              {entry.source === 'config' && (
                <span className="jp-qsecure-tag" title={entry.location}>
                  {entry.kind === 'database' ? trans.__('database') : trans.__('config')}
                </span>
              )}
            </div>
            <div className="jp-qsecure-muted">
              {entry.version !== null && trans.__('version %1', entry.version)}
              {entry.version !== null && ' · '}
              {leaseText(entry, trans)}
            </div>
            <div className="jp-qsecure-secret-actions">
              <button className="jp-mod-styled jp-mod-accept" onClick={() => insert(entry)}>
                {trans.__('Insert')}
              </button>
              {entry.source === 'store' && writable && (
                <>
                  <button
                    className="jp-mod-styled jp-mod-reject"
                    onClick={() => {
                      setRotating(entry.name);
                      setTimeout(() => valueRef.current?.focus(), 0);
                    }}
                  >
                    {trans.__('Rotate')}
                  </button>
                  <button className="jp-mod-styled jp-mod-warn" onClick={() => void remove(entry)}>
                    {trans.__('Delete')}
                  </button>
                </>
              )}
            </div>
          </li>
        ))}
      </ul>
      <form
        className="jp-qsecure-secret-form"
        onSubmit={event => void store(event)}
        autoComplete="off"
      >
        <h3>{rotating ? trans.__('New value for %1', rotating) : trans.__('Add a secret')}</h3>
        {!rotating && (
          <input
            className="jp-mod-styled"
            placeholder={trans.__('Name, e.g. ibm_token')}
            aria-label={trans.__('Secret name')}
            value={name}
            pattern={SECRET_NAME_HTML_PATTERN}
            spellCheck={false}
            onChange={event => setName(event.target.value)}
            disabled={!writable || busy}
          />
        )}
        <input
          ref={valueRef}
          className="jp-mod-styled"
          type="password"
          autoComplete="new-password"
          placeholder={trans.__('Value')}
          aria-label={trans.__('Secret value')}
          disabled={!writable || busy}
        />
        <p className="jp-qsecure-muted">
          {trans.__('The value goes to the server (OpenBao) and is not kept in the browser.')}
        </p>
        <div className="jp-qsecure-secret-actions">
          <button
            type="submit"
            className="jp-mod-styled jp-mod-accept"
            disabled={!writable || busy}
          >
            <addIcon.react tag="span" />
            {rotating ? trans.__('Rotate') : trans.__('Store')}
          </button>
          {rotating && (
            <button
              type="button"
              className="jp-mod-styled jp-mod-reject"
              onClick={() => {
                setRotating(null);
                if (valueRef.current) {
                  valueRef.current.value = '';
                }
              }}
            >
              {trans.__('Cancel')}
            </button>
          )}
        </div>
        {list && !writable && (
          <p className="jp-qsecure-muted">
            {trans.__("This server's OpenBao token may not write secrets here.")}
          </p>
        )}
        {message && (
          <p className="jp-qsecure-message" role="status">
            {message}
          </p>
        )}
      </form>
    </div>
  );
}

export class SecretsPanel extends ReactWidget {
  constructor(private readonly props: IPanelProps) {
    super();
    this.id = 'jp-qsecure-secrets';
    this.addClass('jp-qsecure-Panel');
    this.title.icon = keyIcon;
    this.title.caption = props.service.trans.__('Secrets');
  }

  /** Nothing is asked of the server until the panel is first shown (start-up stays fast). */
  protected onAfterShow(): void {
    if (!this._shown) {
      this._shown = true;
      this.update();
    }
  }

  render(): JSX.Element | null {
    return this._shown ? <SecretsView {...this.props} /> : null;
  }

  private _shown = false;
}
