/**
 * Status bar item: who you are and in which environment (dev/test/prod,
 * colour-coded), the time left on the current notebook kernel's credentials,
 * and whether OpenBao answers. Asks `GET status` every few seconds (a setting;
 * paused while the page is hidden) and counts down between answers.
 */

import * as React from 'react';

import { INotebookTracker } from '@jupyterlab/notebook';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';

import { describeError, IKernelCredentials, IStatus } from './api';
import { shieldIcon } from './icons';
import { QSecureService } from './service';
import {
  clockSkew,
  formatTimeLeft,
  kernelStatusStale,
  secondsLeft,
  timeLeftLevel
} from './timeleft';

export class QSecureStatus extends ReactWidget {
  constructor(
    private readonly service: QSecureService,
    private readonly tracker: INotebookTracker,
    private readonly onClick: () => void,
    when: Promise<unknown>
  ) {
    super();
    this.addClass('jp-qsecure-Status');
    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: {
        interval: service.settings.statusRefreshSeconds * 1000,
        backoff: true,
        max: 300 * 1000
      },
      name: 'jupyter-qsecure:status',
      standby: 'when-hidden',
      auto: false
    });
    // First asked once JupyterLab has restored its layout: start-up is not slowed down.
    void when.then(() => this._poll.start());
    service.settingsChanged.connect((_, settings) => {
      this._poll.frequency = {
        ...this._poll.frequency,
        interval: settings.statusRefreshSeconds * 1000
      };
    });
    tracker.currentChanged.connect(this.onKernelMaybeChanged, this);
    tracker.widgetAdded.connect((_, panel) => {
      panel.sessionContext.kernelChanged.connect(this.onKernelMaybeChanged, this);
      // Credentials are fetched at a kernel's first execution: ask again when a run ends.
      panel.sessionContext.statusChanged.connect((context, status) => {
        if (
          status === 'idle' &&
          this._lastBusy === context &&
          tracker.currentWidget?.sessionContext === context &&
          this.credentialsMayHaveChanged()
        ) {
          void this._poll.refresh();
        }
        this._lastBusy =
          status === 'busy' ? context : this._lastBusy === context ? null : this._lastBusy;
      });
    });
  }

  dispose(): void {
    this._poll.dispose();
    window.clearTimeout(this._tick);
    super.dispose();
  }

  /** The current notebook or a kernel changed: ask again if the shown kernel is not current. */
  private onKernelMaybeChanged(): void {
    if (kernelStatusStale(this._askedKernel, this.currentKernelId())) {
      void this._poll.refresh();
    }
  }

  /** Not yet issued, failed, or close to (or past) expiry: a run may have (re)issued them. */
  private credentialsMayHaveChanged(): boolean {
    const kernel = this._kernel;
    if (!kernel || kernel.credentials !== 'active') {
      return true;
    }
    const left = secondsLeft(kernel.expires_at, Date.now(), this._skew);
    return left === null || left < this.service.settings.credentialWarningMinutes * 60 + 60;
  }

  private currentKernelId(): string | null {
    return this.tracker.currentWidget?.sessionContext.session?.kernel?.id ?? null;
  }

  private async refresh(): Promise<void> {
    const kernelId = this.currentKernelId();
    this._askedKernel = kernelId;
    try {
      const status = await this.service.client.status(kernelId ? [kernelId] : []);
      const received = Date.now();
      this._status = status;
      this._error = null;
      this._kernel = kernelId ? (status.kernels.find(k => k.kernel_id === kernelId) ?? null) : null;
      this._skew = this._kernel
        ? clockSkew(this._kernel.expires_at, this._kernel.seconds_left, received)
        : 0;
    } catch (err) {
      this._error = describeError(err, this.service.trans);
      this.update();
      throw err; // the poll backs off
    }
    this.update();
  }

  /** Re-render when the shown time left changes (every second under a minute). */
  private scheduleTick(seconds: number | null): void {
    window.clearTimeout(this._tick);
    if (seconds === null || seconds <= 0 || this.isDisposed) {
      return;
    }
    const delay = seconds < 60 ? 1000 : ((seconds % 60) + 0.05) * 1000;
    this._tick = window.setTimeout(() => this.update(), Math.max(250, delay));
  }

  render(): JSX.Element {
    const trans = this.service.trans;
    const status = this._status;
    if (!status) {
      return (
        <span className="jp-qsecure-status-item" title={this._error ?? ''}>
          <shieldIcon.react tag="span" />
          {this._error ? trans.__('qsecure: server unreachable') : trans.__('qsecure…')}
        </span>
      );
    }
    const kernel = this._kernel;
    const left =
      kernel && kernel.credentials === 'active'
        ? secondsLeft(kernel.expires_at, Date.now(), this._skew)
        : null;
    this.scheduleTick(left);
    const level = timeLeftLevel(left, this.service.settings.credentialWarningMinutes * 60);
    const bao = status.openbao;
    const baoState = !bao.configured ? 'none' : bao.reachable && !bao.sealed ? 'ok' : 'down';
    const baoText = {
      none: trans.__('no OpenBao'),
      ok: trans.__('OpenBao'),
      down: bao.sealed ? trans.__('OpenBao sealed') : trans.__('OpenBao unreachable')
    }[baoState];
    const credText = !kernel
      ? null
      : kernel.credentials === 'error'
        ? trans.__('credentials failed')
        : kernel.credentials === 'none'
          ? trans.__('no credentials yet')
          : formatTimeLeft(left, trans);
    const title = [
      trans.__('Signed in as %1, environment %2', status.user, status.environment),
      kernel
        ? trans.__('Kernel credentials: %1', credText ?? '')
        : trans.__('No notebook kernel selected'),
      bao.configured
        ? trans.__('OpenBao at %1: %2', bao.address ?? '?', baoText)
        : trans.__('No OpenBao configured'),
      trans.__('Save gate mode: %1', status.save_mode),
      trans.__('Click to open the secrets panel')
    ].join('\n');
    return (
      <span className="jp-qsecure-status-item" title={title} onClick={this.onClick}>
        <span className={`jp-qsecure-env jp-qsecure-env-${status.environment}`}>
          {status.environment}
        </span>
        <span className="jp-qsecure-user">{status.user}</span>
        {credText !== null && (
          <span className={`jp-qsecure-creds jp-qsecure-creds-${level}`}>{credText}</span>
        )}
        <span className={`jp-qsecure-bao jp-qsecure-bao-${baoState}`}>
          <span className="jp-qsecure-dot" aria-hidden="true" />
          {baoText}
        </span>
      </span>
    );
  }

  private _poll: Poll;
  private _status: IStatus | null = null;
  private _kernel: IKernelCredentials | null = null;
  /** The kernel the last request asked about (undefined: none was sent yet). */
  private _askedKernel: string | null | undefined = undefined;
  private _skew = 0;
  private _error: string | null = null;
  private _tick = 0;
  private _lastBusy: unknown = null;
}
