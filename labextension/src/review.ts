/**
 * Review status helpers. Pure TypeScript.
 */

import { IPromotionResult, IReviewStatus, QSecureApiError } from './api';
import { ITrans, identityTrans } from './trans';

/**
 * The 0-based indices of the changed cells in the notebook as it is now (the
 * server numbers them from 1, as JupyterLab shows them), those that exist.
 */
export function changedCellIndices(
  status: Pick<IReviewStatus, 'changed_cells'>,
  cellCount: number
): number[] {
  const found = new Set<number>();
  for (const number of status.changed_cells) {
    if (Number.isInteger(number) && number >= 1 && number <= cellCount) {
      found.add(number - 1);
    }
  }
  return [...found].sort((a, b) => a - b);
}

/** The review state in a few words. */
export function reviewSummary(status: IReviewStatus, trans: ITrans = identityTrans): string {
  switch (status.status) {
    case 'approved':
      return trans.__(
        'approved (%1 of %2: %3)',
        status.approvers.length,
        status.required,
        status.approvers.join(', ')
      );
    case 'changed':
      return trans.__('changed since the last approval');
    default:
      return trans.__(
        'not approved (%1 of %2 approvals)',
        status.approvers.length,
        status.required
      );
  }
}

/** Where the promotion went, in one sentence. */
export function promotionSummary(result: IPromotionResult, trans: ITrans = identityTrans): string {
  return trans._n(
    'Promoted to %2 (%1 file).',
    'Promoted to %2 (%1 files).',
    result.files.length,
    result.out_dir ?? trans.__('the output folder')
  );
}

/**
 * The cells a refusal of `POST promote` or `POST review/approve` names, as 0-based
 * indices of the notebook as it is now (the server numbers them from 1): `cell` of a
 * secret or an untranslatable cell, `cells` changed since the approval.
 */
export function refusalCellIndices(err: unknown, cellCount: number): number[] {
  if (!(err instanceof QSecureApiError)) {
    return [];
  }
  const { cell, cells } = err.details;
  const numbers = [
    ...(typeof cell === 'number' ? [cell] : []),
    ...(Array.isArray(cells) ? cells.filter((n): n is number => typeof n === 'number') : [])
  ];
  return changedCellIndices({ changed_cells: numbers }, cellCount);
}
