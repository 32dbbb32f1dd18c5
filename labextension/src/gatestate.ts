/**
 * The save gate's state per notebook, and what the UI does on each save outcome,
 * so that autosave refusals never stack (issue 16, case 3): one notification per
 * distinct refusal, a red indicator in the notebook toolbar until a save goes
 * through, our dialog only when the user saves by hand, and no request at all for
 * an autosave of content the server has already refused.
 *
 * Pure TypeScript: the class decides, the extension (savegate.ts) carries out the
 * returned effects. Tested by Jest.
 */

/** What the toolbar indicator shows. */
export type GateStatus = 'clean' | 'refused' | 'overridden';

/** What to do with the notebook's single notification. */
export type NotificationEffect = 'show' | 'update' | 'keep' | 'dismiss' | 'none';

export interface IGateEffects {
  /** Open the refusal dialog (a manual save, and the dialog is not open yet). */
  showDialog: boolean;
  notification: NotificationEffect;
  indicator: GateStatus;
}

/** One save attempt's outcome, as the extension saw it. */
export interface IRefusalEvent {
  /** Same for two refusals with the same findings (findings.ts `findingsKey`). */
  findingsKey: string;
  /** A digest of the refused content ({@link contentDigest}). */
  contentDigest: string;
  /** The user asked for this save (Save command, toolbar, Ctrl+S); false for autosave. */
  manual: boolean;
}

interface IPathState {
  status: GateStatus;
  findingsKey: string | null;
  refusedDigest: string | null;
  /** The findings key the visible notification is about (null: none is visible). */
  notifiedKey: string | null;
  /** The findings key of a notification the user dismissed (do not show it again). */
  dismissedKey: string | null;
  /** The findings the user chose to save anyway (with a reason) last time. */
  overriddenKey: string | null;
  dialogOpen: boolean;
  refusals: number;
}

function fresh(): IPathState {
  return {
    status: 'clean',
    findingsKey: null,
    refusedDigest: null,
    notifiedKey: null,
    dismissedKey: null,
    overriddenKey: null,
    dialogOpen: false,
    refusals: 0
  };
}

export class SaveGateState {
  /**
   * Whether to send this save to the server. An autosave of content that was
   * refused already is not sent (the server would refuse it again; it keeps one
   * recovery copy and one ledger entry per distinct content, but the request and
   * the scan are wasted). A manual save is always sent.
   */
  shouldSend(path: string, contentDigest: string, manual: boolean): boolean {
    const state = this._paths.get(path);
    if (manual || state === undefined || state.status !== 'refused') {
      return true;
    }
    return state.refusedDigest !== contentDigest;
  }

  /** The server refused a save of `path`. */
  refused(path: string, event: IRefusalEvent): IGateEffects {
    const state = this.state(path);
    const sameAsOverride =
      state.overriddenKey !== null && state.overriddenKey === event.findingsKey;
    state.status = 'refused';
    state.findingsKey = event.findingsKey;
    state.refusedDigest = event.contentDigest;
    state.refusals += 1;

    if (event.manual) {
      const showDialog = !state.dialogOpen;
      state.dialogOpen = true;
      const notification: NotificationEffect = state.notifiedKey !== null ? 'dismiss' : 'none';
      state.notifiedKey = null;
      state.dismissedKey = event.findingsKey; // seen in the dialog: autosave need not repeat it
      return { showDialog, notification, indicator: 'refused' };
    }

    let notification: NotificationEffect;
    if (state.dialogOpen || sameAsOverride) {
      notification = 'none'; // the dialog shows it, or the user saved these findings knowingly
    } else if (state.notifiedKey === event.findingsKey) {
      notification = 'keep';
    } else if (state.notifiedKey !== null) {
      notification = 'update';
      state.notifiedKey = event.findingsKey;
    } else if (state.dismissedKey === event.findingsKey) {
      notification = 'none'; // dismissed already; the indicator stays red
    } else {
      notification = 'show';
      state.notifiedKey = event.findingsKey;
    }
    return { showDialog: false, notification, indicator: 'refused' };
  }

  /** A save of `path` went through (the notebook is clean, or the gate allowed it). */
  saved(path: string): IGateEffects {
    const state = this._paths.get(path);
    const notification: NotificationEffect = state?.notifiedKey ? 'dismiss' : 'none';
    this._paths.delete(path);
    return { showDialog: false, notification, indicator: 'clean' };
  }

  /** The user saved anyway, with a reason, over these findings. */
  overridden(path: string, findingsKey: string): IGateEffects {
    const state = this.state(path);
    const notification: NotificationEffect = state.notifiedKey !== null ? 'dismiss' : 'none';
    state.status = 'overridden';
    state.overriddenKey = findingsKey;
    state.notifiedKey = null;
    state.refusedDigest = null;
    return { showDialog: false, notification, indicator: 'overridden' };
  }

  /** The user asked to see the findings (indicator, notification action). */
  dialogOpened(path: string): IGateEffects {
    const state = this.state(path);
    state.dialogOpen = true;
    const notification: NotificationEffect = state.notifiedKey !== null ? 'dismiss' : 'none';
    if (state.notifiedKey !== null) {
      state.dismissedKey = state.notifiedKey;
      state.notifiedKey = null;
    }
    return { showDialog: false, notification, indicator: state.status };
  }

  dialogClosed(path: string): void {
    const state = this._paths.get(path);
    if (state) {
      state.dialogOpen = false;
    }
  }

  /** The user closed the notification: do not show it again for the same findings. */
  notificationDismissed(path: string): void {
    const state = this._paths.get(path);
    if (state && state.notifiedKey !== null) {
      state.dismissedKey = state.notifiedKey;
      state.notifiedKey = null;
    }
  }

  /** The notebook was closed. */
  forget(path: string): void {
    this._paths.delete(path);
  }

  /** The notebook was renamed or moved. */
  renamed(oldPath: string, newPath: string): void {
    const state = this._paths.get(oldPath);
    if (state) {
      this._paths.delete(oldPath);
      this._paths.set(newPath, state);
    }
  }

  status(path: string): GateStatus {
    return this._paths.get(path)?.status ?? 'clean';
  }

  /** How many refusals since the last successful save (shown in the indicator's title). */
  refusals(path: string): number {
    return this._paths.get(path)?.refusals ?? 0;
  }

  hasNotification(path: string): boolean {
    return (this._paths.get(path)?.notifiedKey ?? null) !== null;
  }

  private state(path: string): IPathState {
    let state = this._paths.get(path);
    if (!state) {
      state = fresh();
      this._paths.set(path, state);
    }
    return state;
  }

  private _paths = new Map<string, IPathState>();
}

/**
 * A short digest of content to save, to tell "the same content again" from a
 * change. Not a security measure (cyrb53, 53 bits, hand-written because the
 * browser's SHA-256 is asynchronous and missing on plain-http origins): a
 * collision would only skip one autosave of a notebook the server refused, and a
 * manual save is always sent.
 */
export function contentDigest(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const value = 4294967296 * (2097151 & h2) + (h1 >>> 0);
  return `${text.length.toString(36)}-${value.toString(36)}`;
}
