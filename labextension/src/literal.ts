/**
 * "Replace the literal with a `secrets.get("NAME")` call": find the Python string
 * literal a finding points at (the finding gives a cell and a line, never the
 * value), read its value so it can be stored, and rewrite the cell's source.
 *
 * Hand-written because it only has to read one line of Python, and a full
 * tokenizer is a large dependency for that. What is deliberately not supported
 * (the UI says so and leaves the cell alone): f-strings (the value is computed),
 * literals with escape sequences (the stored value would differ from the source
 * text), literals that span lines, and implicit concatenation.
 *
 * Pure TypeScript, tested by Jest.
 */

import { SECRET_NAME_PATTERN } from './api';

/** One string literal on a line. Offsets are in UTF-16 units of the line. */
export interface ILiteral {
  /** Start of the literal, prefix included. */
  start: number;
  /** End of the literal (after the closing quote). */
  end: number;
  /** Lower-cased prefix letters (`r`, `b`, `rb`, `f`, `u`…). */
  prefix: string;
  quote: string;
  /** The text between the quotes. */
  body: string;
}

const PREFIX = /^(?:[rRbBuUfF]{1,2})$/;

/** The string literals of one line of Python that open and close on it. */
export function stringLiterals(line: string): ILiteral[] {
  const found: ILiteral[] = [];
  let i = 0;
  while (i < line.length) {
    const ch = line[i];
    if (ch === '#') {
      break; // a comment: the rest of the line is not code
    }
    if (ch !== '"' && ch !== "'") {
      i += 1;
      continue;
    }
    // prefix letters right before the quote, not part of a longer identifier
    let p = i;
    while (p > 0 && /[A-Za-z]/.test(line[p - 1])) {
      p -= 1;
    }
    let prefix = line.slice(p, i);
    if (prefix && (!PREFIX.test(prefix) || (p > 0 && /[\w]/.test(line[p - 1])))) {
      prefix = '';
      p = i;
    }
    const quote = line.startsWith(ch.repeat(3), i) ? ch.repeat(3) : ch;
    let j = i + quote.length;
    let closed = -1;
    while (j < line.length) {
      if (line[j] === '\\') {
        j += 2;
        continue;
      }
      if (line.startsWith(quote, j)) {
        closed = j;
        break;
      }
      j += 1;
    }
    if (closed < 0) {
      break; // opens here and closes on a later line: not handled
    }
    found.push({
      start: p,
      end: closed + quote.length,
      prefix: prefix.toLowerCase(),
      quote,
      body: line.slice(i + quote.length, closed)
    });
    i = closed + quote.length;
  }
  return found;
}

export type LiteralValue =
  | { ok: true; value: string; bytes: boolean }
  | { ok: false; reason: 'fstring' | 'escapes' | 'empty' };

/** The value a literal stands for, when it is the source text itself. */
export function literalValue(literal: ILiteral): LiteralValue {
  if (literal.prefix.includes('f')) {
    return { ok: false, reason: 'fstring' };
  }
  if (literal.body.length === 0) {
    return { ok: false, reason: 'empty' };
  }
  if (!literal.prefix.includes('r') && literal.body.includes('\\')) {
    return { ok: false, reason: 'escapes' };
  }
  return { ok: true, value: literal.body, bytes: literal.prefix.includes('b') };
}

/**
 * The literal the finding most likely means: the one whose value matches the
 * finding's digest when the caller could check that (`matches`, indices into
 * `literals`), else the longest one without white space (keys and tokens have
 * none), else the longest. Null when the line has no literal.
 */
export function pickLiteral(
  literals: ILiteral[],
  matches: ReadonlySet<number> = new Set()
): { literal: ILiteral; index: number; certain: boolean } | null {
  if (literals.length === 0) {
    return null;
  }
  const matched = [...matches].filter(i => i >= 0 && i < literals.length);
  if (matched.length === 1) {
    return { literal: literals[matched[0]], index: matched[0], certain: true };
  }
  const indices = literals.map((_, i) => i);
  const compact = indices.filter(i => !/\s/.test(literals[i].body));
  const pool = compact.length ? compact : indices;
  const best = pool.reduce((a, b) => (literals[b].body.length > literals[a].body.length ? b : a));
  return { literal: literals[best], index: best, certain: literals.length === 1 };
}

/** `api_key`, from `api_key = "…"`, `f(api_key="…")` or `{"api_key": "…"}` before it. */
function nameBefore(line: string, literal: ILiteral): string | null {
  const before = line.slice(0, literal.start);
  const patterns = [
    /["']([A-Za-z][\w-]*)["']\s*:\s*$/, // dict key
    /([A-Za-z_]\w*)\s*:\s*[\w.[\], ]+=\s*$/, // annotated assignment
    /([A-Za-z_]\w*)\s*=\s*$/ // assignment or keyword argument
  ];
  for (const pattern of patterns) {
    const m = pattern.exec(before);
    if (m) {
      return m[1];
    }
  }
  return null;
}

/** Made into a valid secret name (a letter, then letters, digits, `_`, `-`; ≤ 64). */
export function toSecretName(text: string): string | null {
  const name = text
    .trim()
    .replace(/[^A-Za-z0-9_-]+/g, '_')
    .replace(/^[^A-Za-z]+/, '')
    .replace(/_+$/, '')
    .slice(0, 64);
  return SECRET_NAME_PATTERN.test(name) ? name : null;
}

/** A name to propose: the variable or key the literal is assigned to, else the type. */
export function suggestName(line: string, literal: ILiteral, findingType: string): string {
  const fromCode = nameBefore(line, literal);
  const candidates = [fromCode, findingType.toLowerCase(), 'secret'];
  for (const candidate of candidates) {
    const name = candidate === null ? null : toSecretName(candidate);
    if (name) {
      return name;
    }
  }
  return 'secret';
}

/** The call that reads the secret in a qsecure kernel. */
export function secretsCall(name: string, bytes = false): string {
  if (!SECRET_NAME_PATTERN.test(name)) {
    throw new TypeError(`not a secret name: ${JSON.stringify(name)}`);
  }
  return `secrets.get(${JSON.stringify(name)})${bytes ? '.encode()' : ''}`;
}

/** Line `lineNumber` (1-based) of `source`, or null. */
export function sourceLine(source: string, lineNumber: number): string | null {
  const lines = source.split('\n');
  return lineNumber >= 1 && lineNumber <= lines.length ? lines[lineNumber - 1] : null;
}

/** `source` with `literal` on line `lineNumber` (1-based) replaced by `replacement`. */
export function replaceOnLine(
  source: string,
  lineNumber: number,
  literal: ILiteral,
  replacement: string
): string {
  const lines = source.split('\n');
  const line = lines[lineNumber - 1];
  if (line === undefined || line.length < literal.end) {
    throw new RangeError(`line ${lineNumber} changed; try again`);
  }
  lines[lineNumber - 1] = line.slice(0, literal.start) + replacement + line.slice(literal.end);
  return lines.join('\n');
}

/** The line for the dialog, every string literal masked (the value is never shown). */
export function maskedLine(line: string, literals: ILiteral[], chosen: number): string {
  let out = '';
  let at = 0;
  literals.forEach((literal, i) => {
    out += line.slice(at, literal.start);
    out += i === chosen ? `«${literal.body.length} characters»` : '«…»';
    at = literal.end;
  });
  return out + line.slice(at);
}

export const SECRETS_IMPORT = 'from jupyter_qsecure import secrets'; // pragma: allowlist secret (code)

const IMPORT_RE =
  /^[ \t]*(?:from[ \t]+jupyter_qsecure[ \t]+import[ \t]+(?:\(?[^\n#]*\bsecrets\b)|import[ \t]+jupyter_qsecure\.secrets[ \t]+as[ \t]+secrets\b)/m;

/** Whether one of these cell sources imports `secrets` from jupyter_qsecure. */
export function hasSecretsImport(sources: Iterable<string>): boolean {
  for (const source of sources) {
    if (IMPORT_RE.test(source)) {
      return true;
    }
  }
  return false;
}

/**
 * `source` with the import added at the top, or null when the cell starts with a
 * cell magic (`%%…`), where a Python line cannot go: then the caller adds a
 * cell with the import above it.
 */
export function withSecretsImport(source: string): string | null {
  if (/^\s*%%/.test(source)) {
    return null;
  }
  return `${SECRETS_IMPORT}\n${source}`;
}
