import { circuitsCounts, histogramBars, percent } from '../histogram';
import { circuitColumn, newestFirst, normaliseJobId, provenanceJSON, shortId, signatureState } from '../jobs';
import { changedCellIndices, promotionSummary } from '../review';
import { IJobDetail, IJobSummary } from '../api';

function job(over: Partial<IJobSummary>): IJobSummary {
  return {
    job_id: '1'.repeat(32),
    decision_id: '2'.repeat(32),
    decided_at: '2025-01-01T12:00:00Z',
    user: 'alice',
    status: 'completed',
    decision: 'allowed',
    rule: null,
    message: null,
    circuits: 1,
    circuit_hashes: ['c'.repeat(64)],
    backend: 'aer_simulator',
    shots: 1024,
    tags: [],
    signature_verified: true,
    ledger_index: 4,
    ...over
  };
}

describe('histogram', () => {
  it('orders bit strings numerically and scales bars to the tallest', () => {
    const bars = histogramBars({ '11': 514, '00': 510 });
    expect(bars.map(b => b.outcome)).toEqual(['00', '11']);
    expect(bars[1].width).toBe(1);
    expect(bars[0].width).toBeCloseTo(510 / 514);
    expect(bars[0].fraction + bars[1].fraction).toBeCloseTo(1);
    expect(percent(bars[0].fraction)).toBe('49.8 %');
  });

  it('keeps the most frequent outcomes and sums the rest into "other"', () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      counts[i.toString(2).padStart(6, '0')] = i + 1;
    }
    const bars = histogramBars(counts, 8);
    expect(bars).toHaveLength(9);
    expect(bars[8].outcome).toBe('other');
    expect(bars.reduce((s, b) => s + b.count, 0)).toBe((40 * 41) / 2);
    expect(bars.slice(0, 8).map(b => b.count)).toEqual([33, 34, 35, 36, 37, 38, 39, 40]);
  });

  it('ignores counts that are not numbers and survives an empty result', () => {
    expect(histogramBars({ '0': 3, '1': -1, x: NaN } as any)).toEqual([
      { outcome: '0', count: 3, fraction: 1, width: 1 }
    ]);
    expect(histogramBars({})).toEqual([]);
    expect(circuitsCounts(null)).toEqual([]);
    expect(circuitsCounts({ '0': 1 })).toEqual([{ '0': 1 }]);
    expect(circuitsCounts([{ '0': 1 }, { '1': 2 }])).toHaveLength(2);
  });
});

describe('jobs', () => {
  it('shortens ids and shows more circuits', () => {
    expect(shortId('abcdef0123456789')).toBe('abcdef01…');
    expect(shortId('abc')).toBe('abc');
    expect(shortId(null)).toBe('–');
    expect(circuitColumn(job({ circuit_hashes: ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)] }))).toBe(
      'aaaaaaaa… +2'
    );
    expect(circuitColumn(job({ circuit_hashes: [] }))).toBe('–');
  });

  it('tells verified, failed and unsigned apart', () => {
    expect(signatureState(job({ signature_verified: true }))).toBe('verified');
    expect(signatureState(job({ signature_verified: false }))).toBe('failed');
    expect(signatureState(job({ signature_verified: null }))).toBe('unsigned');
  });

  it('lists newest first', () => {
    const jobs = [
      job({ job_id: 'a', decided_at: '2025-01-01T10:00:00Z', ledger_index: 1 }),
      job({ job_id: 'b', decided_at: '2025-01-01T12:00:00Z', ledger_index: 3 }),
      job({ job_id: 'c', decided_at: '2025-01-01T12:00:00Z', ledger_index: 5 })
    ];
    expect(newestFirst(jobs).map(j => j.job_id)).toEqual(['c', 'b', 'a']);
  });

  it('accepts a pasted job or decision id', () => {
    expect(normaliseJobId(`  ${'AB'.repeat(16)} `)).toBe('ab'.repeat(16));
    expect(normaliseJobId('ab'.repeat(15))).toBeNull();
    expect(normaliseJobId('e102…')).toBeNull();
  });

  it('copies the whole provenance as JSON', () => {
    const detail: IJobDetail = {
      job: job({}),
      entries: [{ index: 4, kind: 'job.decided', timestamp: 't', actor: 'user:alice', body: {}, leaf_hash: 'h' }],
      manifest: { payloadType: 'application/vnd.in-toto+json', payload: 'p', signatures: [] },
      statement: { subject: [] },
      result: { counts: { '00': 1 }, metadata: {}, envelope: null },
      verification: { verified: true, problems: [] },
      proofs: [{ index: 4, proof: { path: [] }, verified: true }]
    };
    const parsed = JSON.parse(provenanceJSON(detail));
    expect(Object.keys(parsed)).toEqual([
      'job_id',
      'decision_id',
      'manifest',
      'statement',
      'result',
      'verification',
      'ledger_entries',
      'inclusion_proofs'
    ]);
    expect(parsed.inclusion_proofs[0].verified).toBe(true);
  });
});

describe('review', () => {
  it('finds changed cells by id, else by index', () => {
    expect(changedCellIndices({ changed_cells: [0], changed_cell_ids: ['b', 'gone'] }, ['a', 'x', 'b'])).toEqual([2]);
    expect(changedCellIndices({ changed_cells: [3, 0, 9, -1] }, ['a', 'b', 'c', 'd'])).toEqual([0, 3]);
  });

  it('says where the promotion went or why it was refused', () => {
    const base = { path: 'a.ipynb', files: ['a.py', 'a.lock'], ledger_index: 9 };
    expect(promotionSummary({ ...base, ok: true, output_dir: 'dist', reason: null })).toBe(
      'Promoted to dist (2 files).'
    );
    expect(promotionSummary({ ...base, files: [], ok: false, output_dir: null, reason: 'not approved' })).toBe(
      'Promotion refused: not approved'
    );
  });
});
