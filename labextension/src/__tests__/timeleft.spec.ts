import {
  clockSkew,
  formatTimeLeft,
  formatWhen,
  kernelStatusStale,
  secondsLeft,
  timeLeftLevel
} from '../timeleft';

describe('formatTimeLeft', () => {
  it.each([
    [null, 'no credentials'],
    [NaN, 'no credentials'],
    [-5, 'expired'],
    [0, 'expired'],
    [0.4, '0 s'],
    [45.9, '45 s'],
    [60, '1 min'],
    [14 * 60 + 59, '14 min'],
    [3600, '1 h 00 min'],
    [3600 + 5 * 60 + 30, '1 h 05 min'],
    [23 * 3600 + 59 * 60, '23 h 59 min'],
    [2 * 86400 + 3 * 3600 + 100, '2 d 3 h']
  ])('%p seconds -> %p', (seconds, text) => {
    expect(formatTimeLeft(seconds as number | null)).toBe(text);
  });

  it('never rounds up (never promises more time than is left)', () => {
    expect(formatTimeLeft(119.99)).toBe('1 min');
    expect(formatTimeLeft(59.99)).toBe('59 s');
  });
});

describe('secondsLeft and clockSkew', () => {
  const expires = '2025-01-01T12:30:00Z';
  const end = Date.parse(expires);

  it('counts down from expires_at', () => {
    expect(secondsLeft(expires, end - 90_000)).toBe(90);
    expect(secondsLeft(expires, end + 1000)).toBe(-1);
    expect(secondsLeft(null, end)).toBeNull();
    expect(secondsLeft('not a date', end)).toBeNull();
  });

  it("corrects for a browser clock that is off by the server's answer", () => {
    // the server said 600 s left; the browser clock is 2 minutes behind
    const received = end - 600_000 - 120_000;
    const skew = clockSkew(expires, 600, received);
    expect(skew).toBe(120_000);
    expect(secondsLeft(expires, received, skew)).toBe(600);
    expect(secondsLeft(expires, received + 60_000, skew)).toBe(540);
  });

  it('has no skew without an answer to compare', () => {
    expect(clockSkew(null, 10, 0)).toBe(0);
    expect(clockSkew(expires, null, 0)).toBe(0);
    expect(clockSkew('bad', 10, 0)).toBe(0);
  });
});

describe('timeLeftLevel', () => {
  it('is amber under the warning threshold and red when expired', () => {
    expect(timeLeftLevel(null)).toBe('none');
    expect(timeLeftLevel(0)).toBe('expired');
    expect(timeLeftLevel(299)).toBe('warn');
    expect(timeLeftLevel(300)).toBe('ok');
    expect(timeLeftLevel(100, 60)).toBe('ok');
  });
});

describe('formatWhen', () => {
  const now = Date.parse('2025-01-01T12:00:00Z');
  it('says how long ago, then the date', () => {
    expect(formatWhen('2025-01-01T11:59:30Z', now)).toBe('just now');
    expect(formatWhen('2025-01-01T11:57:00Z', now)).toBe('3 min ago');
    expect(formatWhen('2025-01-01T09:00:00Z', now)).toBe('3 h ago');
    expect(formatWhen('2024-12-30T08:05:00Z', now)).toBe('2024-12-30 08:05');
    expect(formatWhen('garbage', now)).toBe('garbage');
  });
});

describe('kernelStatusStale', () => {
  it('asks nothing when a notebook opens: it is current before its kernel starts', () => {
    // From the launcher (no notebook kernel asked about) to a new notebook without a kernel yet.
    expect(kernelStatusStale(null, null)).toBe(false);
    // Before the first poll (after JupyterLab's restore) nothing is asked early.
    expect(kernelStatusStale(undefined, null)).toBe(false);
    expect(kernelStatusStale(undefined, 'k1')).toBe(false);
    // Another notebook of the same kernel, or a kernel change of a notebook in the background.
    expect(kernelStatusStale('k1', 'k1')).toBe(false);
  });

  it('asks again when the current kernel is not the one shown', () => {
    expect(kernelStatusStale(null, 'k1')).toBe(true); // the opened notebook's kernel started
    expect(kernelStatusStale('k1', 'k2')).toBe(true); // another notebook, or a new kernel
    expect(kernelStatusStale('k1', null)).toBe(true); // the notebook was closed
  });
});
