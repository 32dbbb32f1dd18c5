import {
  actionsFor,
  cellsWithOutputFindings,
  describeLocation,
  findingRows,
  findingsKey,
  locateCell,
  parseFinding,
  parseRefusal,
  summarize
} from '../findings';
import { IFinding } from '../api';

const HASH = 'a'.repeat(64);

/** The refusal body exactly as docs/rest-api.md shows it. */
const contractBody = {
  message: 'Save of a.ipynb refused: 1 secret found (AWS Access Key in cell 2, line 3).',
  reason: 'secrets found',
  mode: 'block',
  path: 'a.ipynb',
  findings: [
    {
      path: 'a.ipynb',
      cell: 1,
      cell_id: 'c0ffee',
      where: 'source',
      output: null,
      mime: null,
      line: 3,
      type: 'AWS Access Key',
      hashed_secret: HASH,
      cell_number: 2,
      location: 'cell 2, line 3'
    }
  ],
  recovery_id: '20250101-ab12',
  repeat: false,
  refused_at: '2025-01-01T12:00:00Z',
  override: { allowed: false, reason_min_length: 10 }
};

function finding(over: Partial<IFinding>): IFinding {
  return {
    path: 'a.ipynb',
    cell: 0,
    cell_id: null,
    where: 'source',
    output: null,
    mime: null,
    line: 1,
    type: 'Secret Keyword',
    hashed_secret: HASH,
    cell_number: null,
    location: null,
    ...over
  };
}

describe('parseRefusal', () => {
  it("reads the contract's 422 body", () => {
    const parsed = parseRefusal(contractBody)!;
    expect(parsed.unreadable).toBe(0);
    expect(parsed.refusal.findings).toHaveLength(1);
    const f = parsed.refusal.findings[0];
    expect(f.cell).toBe(1);
    expect(f.cell_id).toBe('c0ffee');
    expect(f.where).toBe('source');
    expect(f.line).toBe(3);
    expect(f.cell_number).toBe(2);
    expect(parsed.refusal.recovery_id).toBe('20250101-ab12');
    expect(parsed.refusal.override).toEqual({ allowed: false, reason_min_length: 10 });
  });

  it('is null for a 422 that is not the gate (no findings list)', () => {
    expect(parseRefusal({ message: 'Unprocessable' })).toBeNull();
    expect(parseRefusal(null)).toBeNull();
    expect(parseRefusal('text')).toBeNull();
    expect(parseRefusal([])).toBeNull();
  });

  it('counts findings it cannot read instead of dropping them silently', () => {
    const parsed = parseRefusal({
      ...contractBody,
      findings: [contractBody.findings[0], { cell: 'x' }, null, { line: 0, type: 'X' }]
    })!;
    expect(parsed.refusal.findings).toHaveLength(1);
    expect(parsed.unreadable).toBe(3);
  });

  it('does not allow "save anyway" unless the body says so (fail closed)', () => {
    const { override, ...noOverride } = contractBody;
    expect(override.allowed).toBe(false);
    expect(parseRefusal(noOverride)!.refusal.override.allowed).toBe(false);
    expect(
      parseRefusal({ ...contractBody, override: { allowed: 'yes' } })!.refusal.override.allowed
    ).toBe(false);
    expect(
      parseRefusal({ ...contractBody, override: { allowed: true } })!.refusal.override
    ).toEqual({
      allowed: true,
      reason_min_length: 10
    });
  });

  it('takes a keyed fingerprint where there is no hashed_secret', () => {
    const f = parseFinding({
      line: 2,
      type: 'T',
      fingerprint: 'b'.repeat(64),
      where: 'bogus',
      cell: -1
    })!;
    expect(f.hashed_secret).toBe('b'.repeat(64));
    expect(f.where).toBeNull();
    expect(f.cell).toBeNull();
  });
});

describe('numbering', () => {
  it('numbers cells as JupyterLab shows them, from 1 (issue 16, case 4)', () => {
    expect(describeLocation(finding({ cell: 0, line: 3 }))).toBe('Cell 1, line 3');
    expect(describeLocation(finding({ cell: 1, line: 1 }))).toBe('Cell 2, line 1');
  });

  it('numbers outputs from 1 and names where the secret is', () => {
    expect(describeLocation(finding({ cell: 4, where: 'outputs', output: 0, line: 2 }))).toBe(
      'Cell 5, output 1, line 2'
    );
    expect(describeLocation(finding({ cell: 2, where: 'attachments', line: 1 }))).toBe(
      'Cell 3, attachment, line 1'
    );
    expect(describeLocation(finding({ cell: 2, where: 'metadata', line: 4 }))).toBe(
      'Cell 3, metadata, line 4'
    );
    expect(describeLocation(finding({ cell: null, where: 'metadata', line: 2 }))).toBe(
      'Notebook metadata, line 2'
    );
    expect(describeLocation(finding({ cell: null, where: null, line: 7 }))).toBe('Line 7');
  });

  it('uses where the cell is now when it moved', () => {
    expect(describeLocation(finding({ cell: 0, line: 3 }), 5)).toBe('Cell 6, line 3');
  });

  it('finds a cell by id after cells were inserted above it', () => {
    const f = finding({ cell: 1, cell_id: 'c0ffee' });
    expect(locateCell(f, ['x', 'c0ffee'])).toBe(1);
    expect(locateCell(f, ['new', 'x', 'c0ffee'])).toBe(2);
  });

  it("does not point at another cell when the finding's cell was deleted", () => {
    const f = finding({ cell: 1, cell_id: 'c0ffee' });
    expect(locateCell(f, ['x', 'other'])).toBeNull();
    expect(locateCell(f, ['x'])).toBeNull();
    // a cell without an id at that index: the index is all there is
    expect(locateCell(f, ['x', null])).toBe(1);
  });

  it('falls back to the index without ids, and is null for notebook metadata', () => {
    expect(locateCell(finding({ cell: 2 }), [null, null, null])).toBe(2);
    expect(locateCell(finding({ cell: 3 }), [null, null, null])).toBeNull();
    expect(locateCell(finding({ cell: null, where: 'metadata' }), ['a'])).toBeNull();
  });
});

describe('rows and actions', () => {
  it('offers "clear outputs" for outputs and "replace" for source, "go to" for any cell', () => {
    expect(actionsFor(finding({ where: 'source' }), 0)).toEqual({
      goTo: true,
      clearOutputs: false,
      replace: true
    });
    expect(actionsFor(finding({ where: 'outputs', output: 0 }), 0)).toEqual({
      goTo: true,
      clearOutputs: true,
      replace: false
    });
    expect(actionsFor(finding({ where: 'attachments' }), 0)).toEqual({
      goTo: true,
      clearOutputs: false,
      replace: false
    });
    expect(actionsFor(finding({ cell: null, where: 'metadata' }), null)).toEqual({
      goTo: false,
      clearOutputs: false,
      replace: false
    });
  });

  it('sorts rows in notebook order, metadata first', () => {
    const rows = findingRows(
      [
        finding({ cell: 3, line: 2 }),
        finding({ cell: null, where: 'metadata', line: 1 }),
        finding({ cell: 3, line: 1 }),
        finding({ cell: 0, where: 'outputs', output: 1, line: 1 })
      ],
      null
    );
    expect(rows.map(r => r.location)).toEqual([
      'Notebook metadata, line 1',
      'Cell 1, output 2, line 1',
      'Cell 4, line 1',
      'Cell 4, line 2'
    ]);
  });

  it('lists each cell with output findings once for "clear those outputs"', () => {
    const rows = findingRows(
      [
        finding({ cell: 5, where: 'outputs', output: 0 }),
        finding({ cell: 5, where: 'outputs', output: 2 }),
        finding({ cell: 1, where: 'outputs', output: 0 }),
        finding({ cell: 2, where: 'source' })
      ],
      null
    );
    expect(cellsWithOutputFindings(rows)).toEqual([1, 5]);
  });

  it('never puts the digest (or anything but type and place) into text for people', () => {
    const rows = findingRows([finding({ cell: 0, line: 3, type: 'AWS Access Key' })], null);
    const text = summarize(rows) + rows.map(r => r.location + r.where).join('');
    expect(text).not.toContain(HASH.slice(0, 12));
    expect(summarize(rows)).toBe('1 secret found (AWS Access Key: Cell 1, line 3)');
  });

  it('summarises many findings briefly', () => {
    const rows = findingRows(
      [1, 2, 3, 4, 5].map(line => finding({ line })),
      null
    );
    expect(summarize(rows)).toMatch(/^5 secrets found \(.*; .*; .* and 2 more\)$/);
  });
});

describe('findingsKey', () => {
  it('is the same for the same findings in any order, and differs when one changes', () => {
    const a = finding({ cell: 0, line: 1 });
    const b = finding({ cell: 2, where: 'outputs', output: 0, line: 4 });
    expect(findingsKey([a, b])).toBe(findingsKey([b, a]));
    expect(findingsKey([a, b])).not.toBe(findingsKey([a]));
    expect(findingsKey([a])).not.toBe(findingsKey([{ ...a, hashed_secret: 'c'.repeat(64) }]));
  });
});
