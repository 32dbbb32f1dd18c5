import { circuitsCounts, histogramBars, percent } from '../histogram';
import {
  circuitColumn,
  newestFirst,
  normaliseJobId,
  provenanceJSON,
  shortId,
  signatureState
} from '../jobs';
import { changedCellIndices, promotionSummary, refusalCellIndices, reviewSummary } from '../review';
import {
  IJobDetail,
  IJobSummary,
  normalisePromotion,
  normaliseReviewStatus,
  QSecureApiError
} from '../api';

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
    expect(
      circuitColumn(job({ circuit_hashes: ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)] }))
    ).toBe('aaaaaaaa… +2');
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
      entries: [
        {
          index: 4,
          kind: 'job.decided',
          timestamp: 't',
          actor: 'user:alice',
          body: {},
          leaf_hash: 'h'
        }
      ],
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
  it("maps the server's cell numbers (from 1) to indices that exist", () => {
    expect(changedCellIndices({ changed_cells: [1, 4, 4, 9] }, 5)).toEqual([0, 3]);
    expect(changedCellIndices({ changed_cells: [] }, 5)).toEqual([]);
  });

  it('reads the review status as `review status --format json` writes it', () => {
    const status = normaliseReviewStatus({
      notebook: 'a.ipynb',
      digest: 'd',
      environment: 'dev',
      status: 'changed',
      approved: false,
      required: 2,
      allow_self_approval: false,
      approvers: ['bob'],
      last_editor: 'alice',
      reasons: ['1 of 2 required approval(s)'],
      changed_cells: [2, 0, 'x'],
      removed_cells: [3],
      kernelspec_changed: true,
      approvals: []
    });
    expect(status.changed_cells).toEqual([2]);
    expect(status.removed_cells).toEqual([3]);
    expect(reviewSummary(status)).toBe('changed since the last approval');
    expect(reviewSummary({ ...status, status: 'approved', approvers: ['bob', 'carol'] })).toBe(
      'approved (2 of 2: bob, carol)'
    );
    expect(reviewSummary({ ...status, status: 'unapproved' })).toBe(
      'not approved (1 of 2 approvals)'
    );
  });

  it('fills what a minimal answer leaves out, never calling it approved', () => {
    const status = normaliseReviewStatus({});
    expect(status.status).toBe('unapproved');
    expect(status.approved).toBe(false);
    expect(status.changed_cells).toEqual([]);
  });

  it('says where the promotion went, with files as a list or a digest map', () => {
    expect(
      promotionSummary(
        normalisePromotion({ out_dir: 'dist', files: { 'a.py': 'h', 'a.lock': 'h' } })
      )
    ).toBe('Promoted to dist (2 files).');
    expect(promotionSummary(normalisePromotion({ output_dir: 'o', files: ['a.py'] }))).toBe(
      'Promoted to o (1 file).'
    );
    expect(normalisePromotion(null)).toEqual({
      out_dir: null,
      files: [],
      script: null,
      manifest: null,
      approvers: [],
      ledger_index: null
    });
  });

  it("reads the server's promotion answer (docs/rest-api.md, POST promote)", () => {
    const result = normalisePromotion({
      notebook: 'work/sums.ipynb',
      out_dir: 'work/promoted/sums',
      files: ['work/promoted/sums/approvals.json', 'work/promoted/sums/sums.py'],
      script: 'work/promoted/sums/sums.py',
      digests: { 'sums.py': 'a'.repeat(64) },
      manifest: { path: 'work/promoted/sums/promotion.intoto.json', sha256: 'b'.repeat(64) },
      environment: 'dev',
      approvers: ['alice'],
      promoter: 'alice',
      ledger_index: 58
    });
    expect(result.script).toBe('work/promoted/sums/sums.py');
    expect(result.manifest).toEqual({
      path: 'work/promoted/sums/promotion.intoto.json',
      sha256: 'b'.repeat(64)
    });
    expect(result.approvers).toEqual(['alice']);
    expect(result.ledger_index).toBe(58);
    expect(promotionSummary(result)).toBe('Promoted to work/promoted/sums (2 files).');
    expect(normalisePromotion({ manifest: { path: 'p' } }).manifest).toBeNull();
  });

  it('names the cells a refusal names, as indices of the notebook now', () => {
    const secret = new QSecureApiError(
      409,
      {
        error: 'secret_found',
        message: 'cell 3 (outputs[0], line 1) holds a secret',
        cell: 3,
        line: 1
      },
      'POST promote answered 409'
    );
    expect(secret.details.cell).toBe(3);
    expect(refusalCellIndices(secret, 5)).toEqual([2]);
    const changed = new QSecureApiError(
      409,
      { error: 'not_approved', message: 'changed since its approval', cells: [4, 2, 9] },
      'POST promote answered 409'
    );
    expect(refusalCellIndices(changed, 5)).toEqual([1, 3]);
    const metadata = new QSecureApiError(
      409,
      { error: 'secret_found', message: "the notebook's metadata holds a secret", cell: null },
      'x'
    );
    expect(refusalCellIndices(metadata, 5)).toEqual([]);
    const html = new QSecureApiError(404, '<html>404</html>', 'x');
    expect(html.details).toEqual({});
    expect(refusalCellIndices(html, 5)).toEqual([]);
    expect(refusalCellIndices(new Error('network'), 5)).toEqual([]);
  });
});
