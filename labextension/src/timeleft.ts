/**
 * Time left on the kernel's credentials, for the status bar. Pure TypeScript.
 *
 * The server sends `expires_at` (ISO 8601) and `seconds_left` at the time of the
 * answer; between two polls the status bar counts down from `expires_at` with
 * the browser's clock, corrected by the skew seen at the last answer.
 */

import { ITrans, identityTrans } from './trans';

/** Seconds from `now` (ms since the epoch) until `expiresAt`, or null if unknown. */
export function secondsLeft(expiresAt: string | null, now: number, skewMs = 0): number | null {
  if (!expiresAt) {
    return null;
  }
  const end = Date.parse(expiresAt);
  if (Number.isNaN(end)) {
    return null;
  }
  return (end - (now + skewMs)) / 1000;
}

/**
 * How far the browser's clock is behind the server's (ms), from one answer:
 * the server said `secondsLeftAtAnswer` until `expiresAt` when the browser's
 * clock read `receivedAt`. Add it to the browser's clock before comparing.
 */
export function clockSkew(
  expiresAt: string | null,
  secondsLeftAtAnswer: number | null,
  receivedAt: number
): number {
  if (!expiresAt || secondsLeftAtAnswer === null || !Number.isFinite(secondsLeftAtAnswer)) {
    return 0;
  }
  const end = Date.parse(expiresAt);
  if (Number.isNaN(end)) {
    return 0;
  }
  const serverNow = end - secondsLeftAtAnswer * 1000;
  return serverNow - receivedAt;
}

export type TimeLeftLevel = 'none' | 'ok' | 'warn' | 'expired';

/** Which colour the status bar uses: `warn` under `warnSeconds`. */
export function timeLeftLevel(seconds: number | null, warnSeconds = 300): TimeLeftLevel {
  if (seconds === null) {
    return 'none';
  }
  if (seconds <= 0) {
    return 'expired';
  }
  return seconds < warnSeconds ? 'warn' : 'ok';
}

/**
 * `expired`, `45 s`, `14 min`, `1 h 05 min`, `2 d 3 h`. Rounded down, so the
 * status bar never promises more time than is left.
 */
export function formatTimeLeft(seconds: number | null, trans: ITrans = identityTrans): string {
  if (seconds === null || !Number.isFinite(seconds)) {
    return trans.__('no credentials');
  }
  if (seconds <= 0) {
    return trans.__('expired');
  }
  const s = Math.floor(seconds);
  if (s < 60) {
    return trans.__('%1 s', s);
  }
  const minutes = Math.floor(s / 60);
  if (minutes < 60) {
    return trans.__('%1 min', minutes);
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 24) {
    return trans.__('%1 h %2 min', hours, String(minutes % 60).padStart(2, '0'));
  }
  return trans.__('%1 d %2 h', Math.floor(hours / 24), hours % 24);
}

/** Short relative time for lists, e.g. `3 min ago` (or the date after a day). */
export function formatWhen(iso: string, now: number, trans: ITrans = identityTrans): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) {
    return iso;
  }
  const ago = Math.floor((now - t) / 1000);
  if (ago < 0) {
    return new Date(t).toISOString().replace('T', ' ').slice(0, 16);
  }
  if (ago < 60) {
    return trans.__('just now');
  }
  if (ago < 3600) {
    return trans.__('%1 min ago', Math.floor(ago / 60));
  }
  if (ago < 86400) {
    return trans.__('%1 h ago', Math.floor(ago / 3600));
  }
  return new Date(t).toISOString().replace('T', ' ').slice(0, 16);
}

/**
 * Whether the status bar must ask the server again because the current notebook
 * or its kernel changed: only when the kernel its last request asked about
 * (`asked`; undefined: nothing asked yet, the first poll will) is not the current
 * one (`current`; null: no notebook kernel). Opening a notebook makes it current
 * before its kernel starts, so the open itself asks nothing; the kernel's start
 * does, once the notebook is shown.
 */
export function kernelStatusStale(
  asked: string | null | undefined,
  current: string | null
): boolean {
  return asked !== undefined && asked !== current;
}
