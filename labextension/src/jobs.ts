/**
 * Formatting of the jobs panel's rows and provenance. Pure TypeScript.
 */

import { IJobDetail, IJobSummary, JOB_ID_PATTERN } from './api';

/** The first `n` characters of a hex id or hash, for tables (the full one is in the title). */
export function shortId(hex: string | null | undefined, n = 8): string {
  if (!hex) {
    return '–';
  }
  return hex.length > n ? `${hex.slice(0, n)}…` : hex;
}

export type SignatureState = 'verified' | 'failed' | 'unsigned';

export function signatureState(job: Pick<IJobSummary, 'signature_verified'>): SignatureState {
  if (job.signature_verified === true) {
    return 'verified';
  }
  return job.signature_verified === false ? 'failed' : 'unsigned';
}

/** Newest first (the server lists oldest first). */
export function newestFirst(jobs: IJobSummary[]): IJobSummary[] {
  return [...jobs].sort(
    (a, b) => Date.parse(b.decided_at) - Date.parse(a.decided_at) || b.ledger_index - a.ledger_index
  );
}

/** The circuit hash column: the first circuit's, with `+N` for more circuits. */
export function circuitColumn(job: IJobSummary): string {
  const first = job.circuit_hashes[0];
  const more = job.circuit_hashes.length - 1;
  return first ? `${shortId(first)}${more > 0 ? ` +${more}` : ''}` : '–';
}

/**
 * What "copy provenance" puts on the clipboard: everything needed to check the
 * job offline (manifest, decoded statement, result, ledger entries and inclusion
 * proofs), as stable, indented JSON.
 */
export function provenanceJSON(detail: IJobDetail): string {
  return JSON.stringify(
    {
      job_id: detail.job.job_id,
      decision_id: detail.job.decision_id,
      manifest: detail.manifest,
      statement: detail.statement,
      result: detail.result,
      verification: detail.verification,
      ledger_entries: detail.entries,
      inclusion_proofs: detail.proofs
    },
    null,
    2
  );
}

/** A job id or decision id pasted by a person (spaces, upper case, an ellipsis trimmed). */
export function normaliseJobId(text: string): string | null {
  const id = text.trim().toLowerCase();
  return JOB_ID_PATTERN.test(id) ? id : null;
}
