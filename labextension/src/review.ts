/**
 * Review status helpers. Pure TypeScript.
 */

import { IPromotionResult, IReviewStatus } from './api';
import { ITrans, identityTrans } from './trans';

/**
 * The 0-based indices of the changed cells in the notebook as it is now: by cell
 * id when the server sends ids (cells may have moved), else the server's indices
 * that exist in the notebook.
 */
export function changedCellIndices(
  status: Pick<IReviewStatus, 'changed_cells' | 'changed_cell_ids'>,
  cellIds: ReadonlyArray<string | null>
): number[] {
  const found = new Set<number>();
  if (status.changed_cell_ids && status.changed_cell_ids.length > 0) {
    for (const id of status.changed_cell_ids) {
      const index = cellIds.indexOf(id);
      if (index >= 0) {
        found.add(index);
      }
    }
  } else {
    for (const index of status.changed_cells ?? []) {
      if (Number.isInteger(index) && index >= 0 && index < cellIds.length) {
        found.add(index);
      }
    }
  }
  return [...found].sort((a, b) => a - b);
}

/** The promotion's outcome in one sentence: where it went, or why it was refused. */
export function promotionSummary(result: IPromotionResult, trans: ITrans = identityTrans): string {
  if (result.ok) {
    return trans._n(
      'Promoted to %2 (%1 file).',
      'Promoted to %2 (%1 files).',
      result.files.length,
      result.output_dir ?? trans.__('the output folder')
    );
  }
  return trans.__('Promotion refused: %1', result.reason ?? trans.__('no reason given'));
}
