import { contentDigest, IGateEffects, SaveGateState } from '../gatestate';

const P = 'work/a.ipynb';
const K1 = 'findings-1';
const K2 = 'findings-2';

/** Simulates what savegate.tsx does around one save attempt. */
function attempt(
  gate: SaveGateState,
  content: string,
  opts: { manual?: boolean; refused?: string | null } = {}
): { sent: boolean; effects: IGateEffects | null } {
  const manual = opts.manual ?? false;
  const digest = contentDigest(content);
  if (!gate.shouldSend(P, digest, manual)) {
    return { sent: false, effects: null };
  }
  if (opts.refused === null) {
    return { sent: true, effects: gate.saved(P) };
  }
  return {
    sent: true,
    effects: gate.refused(P, { findingsKey: opts.refused ?? K1, contentDigest: digest, manual })
  };
}

describe('SaveGateState: autosave refusals never stack (issue 16, case 3)', () => {
  it('one notification and no dialog over many autosaves of the same content', () => {
    const gate = new SaveGateState();
    const first = attempt(gate, 'v1');
    expect(first.effects).toEqual({
      showDialog: false,
      notification: 'show',
      indicator: 'refused'
    });
    // the user is away: autosave fires again and again with unchanged content
    for (let i = 0; i < 5; i++) {
      const again = attempt(gate, 'v1');
      expect(again.sent).toBe(false); // not even sent: no scan, no recovery copy, no ledger entry
    }
    expect(gate.status(P)).toBe('refused');
    expect(gate.refusals(P)).toBe(1);
  });

  it('keeps the one notification while edited content is refused for the same findings', () => {
    const gate = new SaveGateState();
    attempt(gate, 'v1');
    const edited = attempt(gate, 'v2');
    expect(edited.sent).toBe(true);
    expect(edited.effects!.notification).toBe('keep');
    expect(gate.refusals(P)).toBe(2);
  });

  it('updates the notification in place when the findings change', () => {
    const gate = new SaveGateState();
    attempt(gate, 'v1', { refused: K1 });
    expect(attempt(gate, 'v2', { refused: K2 }).effects!.notification).toBe('update');
    expect(attempt(gate, 'v3', { refused: K2 }).effects!.notification).toBe('keep');
  });

  it('does not show a dismissed notification again for the same findings', () => {
    const gate = new SaveGateState();
    attempt(gate, 'v1', { refused: K1 });
    gate.notificationDismissed(P);
    expect(gate.hasNotification(P)).toBe(false);
    expect(attempt(gate, 'v2', { refused: K1 }).effects).toEqual({
      showDialog: false,
      notification: 'none',
      indicator: 'refused'
    });
    // a new secret is news
    expect(attempt(gate, 'v3', { refused: K2 }).effects!.notification).toBe('show');
  });

  it('a manual save is always sent and opens the dialog once', () => {
    const gate = new SaveGateState();
    attempt(gate, 'v1');
    const manual = attempt(gate, 'v1', { manual: true });
    expect(manual.sent).toBe(true);
    expect(manual.effects).toEqual({
      showDialog: true,
      notification: 'dismiss',
      indicator: 'refused'
    });
    // Ctrl+S again while the dialog is still open: no second dialog
    expect(attempt(gate, 'v1', { manual: true }).effects!.showDialog).toBe(false);
    gate.dialogClosed(P);
    expect(attempt(gate, 'v1', { manual: true }).effects!.showDialog).toBe(true);
  });

  it('no notification while the dialog is open, nor for findings the dialog showed', () => {
    const gate = new SaveGateState();
    attempt(gate, 'v1', { manual: true });
    expect(attempt(gate, 'v2').effects!.notification).toBe('none');
    gate.dialogClosed(P);
    expect(attempt(gate, 'v3').effects!.notification).toBe('none');
    expect(attempt(gate, 'v4', { refused: K2 }).effects!.notification).toBe('show');
  });

  it('opening the findings from the indicator dismisses the notification', () => {
    const gate = new SaveGateState();
    attempt(gate, 'v1');
    expect(gate.dialogOpened(P)).toEqual({
      showDialog: false,
      notification: 'dismiss',
      indicator: 'refused'
    });
    gate.dialogClosed(P);
    expect(attempt(gate, 'v2').effects!.notification).toBe('none');
  });

  it('a save that goes through clears the indicator and dismisses the notification', () => {
    const gate = new SaveGateState();
    attempt(gate, 'v1');
    const clean = attempt(gate, 'v2', { refused: null });
    expect(clean.effects).toEqual({
      showDialog: false,
      notification: 'dismiss',
      indicator: 'clean'
    });
    expect(gate.status(P)).toBe('clean');
    expect(gate.refusals(P)).toBe(0);
    // a later secret is reported afresh
    expect(attempt(gate, 'v3').effects!.notification).toBe('show');
  });

  it('after "save anyway" the same findings raise no notification, new ones do', () => {
    const gate = new SaveGateState();
    attempt(gate, 'v1', { refused: K1 });
    expect(gate.overridden(P, K1)).toEqual({
      showDialog: false,
      notification: 'dismiss',
      indicator: 'overridden'
    });
    expect(gate.status(P)).toBe('overridden');
    expect(attempt(gate, 'v1').sent).toBe(true); // not skipped: the override was for that save only
    expect(gate.status(P)).toBe('refused');
    expect(attempt(gate, 'v2', { refused: K1 }).effects!.notification).toBe('none');
    expect(attempt(gate, 'v3', { refused: K2 }).effects!.notification).toBe('show');
  });

  it('follows a rename and forgets a closed notebook', () => {
    const gate = new SaveGateState();
    attempt(gate, 'v1');
    gate.renamed(P, 'b.ipynb');
    expect(gate.status(P)).toBe('clean');
    expect(gate.status('b.ipynb')).toBe('refused');
    gate.forget('b.ipynb');
    expect(gate.status('b.ipynb')).toBe('clean');
  });

  it('keeps notebooks apart', () => {
    const gate = new SaveGateState();
    attempt(gate, 'v1');
    const other = gate.refused('other.ipynb', {
      findingsKey: K1,
      contentDigest: contentDigest('v1'),
      manual: false
    });
    expect(other.notification).toBe('show');
    expect(gate.shouldSend('other.ipynb', contentDigest('v1'), false)).toBe(false);
    expect(gate.shouldSend('third.ipynb', contentDigest('v1'), false)).toBe(true);
  });
});

describe('contentDigest', () => {
  it('is stable and tells different content apart', () => {
    expect(contentDigest('{"cells": []}')).toBe(contentDigest('{"cells": []}'));
    expect(contentDigest('a')).not.toBe(contentDigest('b'));
    expect(contentDigest('ab')).not.toBe(contentDigest('ba'));
    expect(contentDigest('')).toMatch(/^0-/);
    const big = 'x'.repeat(100_000);
    expect(contentDigest(big)).not.toBe(contentDigest(big + 'y'));
  });
});
