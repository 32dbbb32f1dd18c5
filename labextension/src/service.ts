/**
 * What the extension's plugins share: the REST client, the translation bundle,
 * the user's settings, and signals between the panels.
 */

import { Token } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';
import type { TranslationBundle } from '@jupyterlab/translation';

import { ISecretStored, QSecureClient } from './api';
import { DEFAULT_SETTINGS, IQSecureSettings } from './settings';

export class QSecureService {
  constructor(
    readonly client: QSecureClient,
    readonly trans: TranslationBundle
  ) {}

  get settings(): IQSecureSettings {
    return this._settings;
  }

  set settings(value: IQSecureSettings) {
    this._settings = value;
    this._settingsChanged.emit(value);
  }

  get settingsChanged(): ISignal<this, IQSecureSettings> {
    return this._settingsChanged;
  }

  /** A secret was stored or deleted (the secrets panel refreshes). */
  get secretsChanged(): ISignal<this, string> {
    return this._secretsChanged;
  }

  /** Store a value on the server. The value is not kept anywhere in the browser. */
  async storeSecret(name: string, value: string): Promise<ISecretStored> {
    const stored = await this.client.storeSecret(name, value);
    this._secretsChanged.emit(name);
    return stored;
  }

  async deleteSecret(name: string): Promise<void> {
    await this.client.deleteSecret(name);
    this._secretsChanged.emit(name);
  }

  private _settings: IQSecureSettings = { ...DEFAULT_SETTINGS };
  private _settingsChanged = new Signal<this, IQSecureSettings>(this);
  private _secretsChanged = new Signal<this, string>(this);
}

export const IQSecure = new Token<QSecureService>(
  'jupyter-qsecure:IQSecure',
  'The jupyter-qsecure REST client, settings and shared signals.'
);

/** Command ids. */
export namespace CommandIDs {
  export const openSecrets = 'qsecure:open-secrets'; // pragma: allowlist secret (a command id)
  export const insertSecret = 'qsecure:insert-secret'; // pragma: allowlist secret (a command id)
  export const openJobs = 'qsecure:open-jobs';
  export const showJob = 'qsecure:show-job';
  export const verifyLedger = 'qsecure:verify-ledger';
  export const showFindings = 'qsecure:show-save-findings';
  export const openReview = 'qsecure:open-review';
}
