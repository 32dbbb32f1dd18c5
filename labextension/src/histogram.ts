/**
 * Bars for a job's histogram: outcome, count, share of the shots. Pure
 * TypeScript (the panel draws them as HTML bars).
 */

import { Counts } from './api';

export interface IBar {
  outcome: string;
  count: number;
  /** Share of all shots, 0..1. */
  fraction: number;
  /** Width relative to the tallest bar, 0..1. */
  width: number;
}

/** The counts of each circuit, whatever shape the result has. */
export function circuitsCounts(counts: Counts | Counts[] | null | undefined): Counts[] {
  if (!counts) {
    return [];
  }
  return Array.isArray(counts) ? counts : [counts];
}

/**
 * Bars sorted by outcome (bit strings in numeric order), the `limit` most
 * frequent kept and the rest summed into one `other` bar.
 */
export function histogramBars(counts: Counts, limit = 32): IBar[] {
  const entries = Object.entries(counts).filter(
    ([, n]) => typeof n === 'number' && Number.isFinite(n) && n >= 0
  );
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  let kept = entries;
  let other = 0;
  if (entries.length > limit) {
    const byCount = [...entries].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    kept = byCount.slice(0, limit);
    other = byCount.slice(limit).reduce((sum, [, n]) => sum + n, 0);
  }
  kept = [...kept].sort((a, b) => compareOutcomes(a[0], b[0]));
  if (other > 0) {
    kept.push(['other', other]);
  }
  const max = kept.reduce((m, [, n]) => Math.max(m, n), 0);
  return kept.map(([outcome, count]) => ({
    outcome,
    count,
    fraction: total > 0 ? count / total : 0,
    width: max > 0 ? count / max : 0
  }));
}

function compareOutcomes(a: string, b: string): number {
  const binary = /^[01 ]+$/;
  if (binary.test(a) && binary.test(b)) {
    const x = a.replace(/ /g, '');
    const y = b.replace(/ /g, '');
    return x.length - y.length || (x < y ? -1 : x > y ? 1 : 0);
  }
  return a.localeCompare(b);
}

/** `51.2 %` */
export function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(1)} %`;
}
