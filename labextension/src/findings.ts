/**
 * Reading the save gate's refusal (the 422 body of `PUT /api/contents/PATH`) and
 * describing its findings for people: cell numbers as JupyterLab shows them
 * (from 1), lines, where (source/output/metadata/attachment), type. Never a value:
 * a finding does not hold one, and nothing here reads the notebook's text.
 *
 * Pure TypeScript, tested by Jest without a browser.
 */

import { FindingWhere, IFinding, ISaveRefusal, isObject } from './api';
import { ITrans, identityTrans } from './trans';

const WHERE: ReadonlySet<string> = new Set(['source', 'outputs', 'metadata', 'attachments']);

/** The override policy when the body does not say: not allowed (fail closed). */
const NO_OVERRIDE = { allowed: false, reason_min_length: 10 };

function int(value: unknown, min: number): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value >= min ? value : null;
}

function str(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/**
 * One finding from JSON, or null when it is not one (then the refusal still
 * stands; the dialog says some findings could not be read).
 */
export function parseFinding(raw: unknown): IFinding | null {
  if (!isObject(raw)) {
    return null;
  }
  const line = int(raw.line, 1);
  const type = str(raw.type);
  if (line === null || type === null) {
    return null;
  }
  const where = str(raw.where);
  const hashed = str(raw.hashed_secret) ?? str(raw.fingerprint);
  return {
    path: str(raw.path) ?? '',
    cell: int(raw.cell, 0),
    cell_id: str(raw.cell_id),
    where: where !== null && WHERE.has(where) ? (where as FindingWhere) : null,
    output: int(raw.output, 0),
    mime: str(raw.mime),
    line,
    type,
    hashed_secret: hashed,
    cell_number: int(raw.cell_number, 1),
    location: str(raw.location)
  };
}

/** The result of reading a 422 body. */
export interface IParsedRefusal {
  refusal: ISaveRefusal;
  /** How many entries of `findings` were not findings (shown as a count, not hidden). */
  unreadable: number;
}

/**
 * Read the refusal body. Returns null when `body` is not the save gate's refusal
 * (another 422 of the contents API): the caller lets JupyterLab handle that one.
 */
export function parseRefusal(body: unknown): IParsedRefusal | null {
  if (!isObject(body) || !Array.isArray(body.findings)) {
    return null;
  }
  const message = str(body.message) ?? '';
  const findings: IFinding[] = [];
  let unreadable = 0;
  for (const raw of body.findings) {
    const finding = parseFinding(raw);
    if (finding === null) {
      unreadable += 1;
    } else {
      findings.push(finding);
    }
  }
  const override = isObject(body.override) ? body.override : null;
  return {
    refusal: {
      message,
      reason: str(body.reason) ?? 'secrets found',
      mode: str(body.mode) ?? 'block',
      path: str(body.path),
      findings,
      recovery_id: str(body.recovery_id),
      repeat: body.repeat === true,
      refused_at: str(body.refused_at),
      override: override
        ? {
            allowed: override.allowed === true,
            reason_min_length: int(override.reason_min_length, 0) ?? NO_OVERRIDE.reason_min_length
          }
        : { ...NO_OVERRIDE }
    },
    unreadable
  };
}

/**
 * Where the finding's cell is in the notebook as it is now: by cell id when the
 * cell has one (cells may have moved since the save), else by the index the server
 * saw. Returns a 0-based index, or null (notebook metadata, or the cell is gone).
 */
export function locateCell(
  finding: IFinding,
  cellIds: ReadonlyArray<string | null>
): number | null {
  if (finding.cell === null && finding.cell_id === null) {
    return null;
  }
  if (finding.cell_id !== null) {
    const index = cellIds.indexOf(finding.cell_id);
    if (index >= 0) {
      return index;
    }
    if (finding.cell === null) {
      return null;
    }
    // The id is gone: the index is only a guess if that cell has no (other) id.
    const other = cellIds[finding.cell];
    return other === undefined || (other !== null && other !== finding.cell_id)
      ? null
      : finding.cell;
  }
  return finding.cell! < cellIds.length ? finding.cell : null;
}

/** The number JupyterLab shows for a 0-based cell index. */
export function cellNumber(index: number): number {
  return index + 1;
}

/** What kind of place the finding is in, for people. */
export function whereLabel(finding: IFinding, trans: ITrans = identityTrans): string {
  switch (finding.where) {
    case 'source':
      return trans.__('source');
    case 'outputs':
      return finding.output !== null
        ? trans.__('output %1', finding.output + 1)
        : trans.__('output');
    case 'metadata':
      return trans.__('metadata');
    case 'attachments':
      return trans.__('attachment');
    default:
      return trans.__('text');
  }
}

/**
 * The finding's location for people, e.g. `Cell 2, output 1, line 3`,
 * `Notebook metadata, line 2`, or `Line 7` for a file that is not a notebook.
 * `currentIndex` is where the cell is now (see {@link locateCell}), when known.
 */
export function describeLocation(
  finding: IFinding,
  currentIndex: number | null = null,
  trans: ITrans = identityTrans
): string {
  const index = currentIndex ?? finding.cell;
  const parts: string[] = [];
  if (index !== null) {
    parts.push(trans.__('Cell %1', cellNumber(index)));
    if (finding.where !== null && finding.where !== 'source') {
      parts.push(whereLabel(finding, trans));
    }
  } else if (finding.where === 'metadata') {
    parts.push(trans.__('Notebook metadata'));
  } else if (finding.where !== null) {
    parts.push(whereLabel(finding, trans));
  }
  parts.push(parts.length ? trans.__('line %1', finding.line) : trans.__('Line %1', finding.line));
  return parts.join(', ');
}

/** What the dialog offers for one finding. */
export interface IFindingActions {
  /** Select the cell (and the line, in its source). */
  goTo: boolean;
  /** Clear the outputs of the cell. */
  clearOutputs: boolean;
  /** Store the literal as a secret and put a `secrets.get("NAME")` call in its place. */
  replace: boolean;
}

export function actionsFor(finding: IFinding, cellIndex: number | null): IFindingActions {
  const inCell = cellIndex !== null;
  return {
    goTo: inCell,
    clearOutputs: inCell && finding.where === 'outputs',
    replace: inCell && finding.where === 'source'
  };
}

/** One row of the dialog: a finding, where it is now, and what can be done. */
export interface IFindingRow {
  finding: IFinding;
  cellIndex: number | null;
  location: string;
  where: string;
  actions: IFindingActions;
}

/** Rows in notebook order (notebook metadata first, then by cell and line). */
export function findingRows(
  findings: IFinding[],
  cellIds: ReadonlyArray<string | null> | null,
  trans: ITrans = identityTrans
): IFindingRow[] {
  const rows = findings.map(finding => {
    const cellIndex = cellIds === null ? finding.cell : locateCell(finding, cellIds);
    return {
      finding,
      cellIndex,
      location: describeLocation(finding, cellIndex, trans),
      where: whereLabel(finding, trans),
      actions: actionsFor(finding, cellIndex)
    };
  });
  const order = (row: IFindingRow) => (row.cellIndex === null ? -1 : row.cellIndex);
  return rows.sort(
    (a, b) =>
      order(a) - order(b) ||
      (a.finding.output ?? -1) - (b.finding.output ?? -1) ||
      a.finding.line - b.finding.line
  );
}

/** The 0-based indices of cells whose outputs hold findings (for "clear those outputs"). */
export function cellsWithOutputFindings(rows: IFindingRow[]): number[] {
  const cells = new Set<number>();
  for (const row of rows) {
    if (row.actions.clearOutputs && row.cellIndex !== null) {
      cells.add(row.cellIndex);
    }
  }
  return [...cells].sort((a, b) => a - b);
}

/**
 * A key that is the same for two refusals with the same findings (same places,
 * same types, same digests), whatever their order: the autosave state machine
 * shows one notification per distinct set of findings.
 */
export function findingsKey(findings: IFinding[]): string {
  return findings
    .map(f =>
      [
        f.cell_id ?? f.cell ?? '-',
        f.where ?? '-',
        f.output ?? '-',
        f.line,
        f.type,
        f.hashed_secret ?? ''
      ].join('|')
    )
    .sort()
    .join('\n');
}

/** A one-line summary, e.g. `2 secrets found (AWS Access Key in cell 2, line 3; …)`. */
export function summarize(rows: IFindingRow[], trans: ITrans = identityTrans): string {
  const shown = rows.slice(0, 3).map(row => `${row.finding.type}: ${row.location}`);
  const more =
    rows.length > shown.length ? ` ${trans.__('and %1 more', rows.length - shown.length)}` : '';
  return `${trans._n('%1 secret found', '%1 secrets found', rows.length)} (${shown.join('; ')}${more})`;
}
