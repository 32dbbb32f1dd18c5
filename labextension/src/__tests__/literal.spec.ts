import {
  hasSecretsImport,
  literalValue,
  maskedLine,
  pickLiteral,
  replaceOnLine,
  secretsCall,
  sourceLine,
  stringLiterals,
  suggestName,
  toSecretName,
  withSecretsImport,
  SECRETS_IMPORT
} from '../literal';

/** A made-up, secret-shaped value, new on each run. */
const fake = () =>
  `AKIA${Math.random().toString(36).slice(2, 10).toUpperCase()}FAKE${Date.now() % 10000}`;

describe('stringLiterals', () => {
  it('finds quoted strings with their prefixes and spans', () => {
    const v = fake();
    const line = `client = connect("host", key=rb'${v}')  # "comment"`;
    const found = stringLiterals(line);
    expect(found.map(l => l.body)).toEqual(['host', v]);
    expect(found[1].prefix).toBe('rb');
    expect(line.slice(found[1].start, found[1].end)).toBe(`rb'${v}'`);
  });

  it('handles escaped quotes and triple quotes on one line', () => {
    const found = stringLiterals(`x = "a\\"b" + """c'd"""`);
    expect(found.map(l => [l.quote, l.body])).toEqual([
      ['"', 'a\\"b'],
      ['"""', "c'd"]
    ]);
  });

  it('ignores a string that continues on the next line and identifiers ending in prefix letters', () => {
    expect(stringLiterals('x = """starts here')).toEqual([]);
    expect(stringLiterals("bar'x'")[0].prefix).toBe('');
  });
});

describe('literalValue', () => {
  const lit = (line: string) => stringLiterals(line)[0];
  it('is the text between the quotes for plain, raw and bytes literals', () => {
    const v = fake();
    expect(literalValue(lit(`"${v}"`))).toEqual({ ok: true, value: v, bytes: false });
    expect(literalValue(lit(`r"${v}\\x"`))).toEqual({ ok: true, value: `${v}\\x`, bytes: false });
    expect(literalValue(lit(`b'${v}'`))).toEqual({ ok: true, value: v, bytes: true });
  });

  it('refuses what it cannot read exactly', () => {
    expect(literalValue(lit('f"{x}abc"'))).toEqual({ ok: false, reason: 'fstring' });
    expect(literalValue(lit('"a\\nb"'))).toEqual({ ok: false, reason: 'escapes' });
    expect(literalValue(lit('""'))).toEqual({ ok: false, reason: 'empty' });
  });
});

describe('pickLiteral', () => {
  it('prefers the literal whose digest matched', () => {
    const lits = stringLiterals(`f("a long string with spaces", "tok", "x")`);
    expect(pickLiteral(lits, new Set([2]))).toMatchObject({ index: 2, certain: true });
  });

  it('else the longest without spaces', () => {
    const v = fake();
    const lits = stringLiterals(
      `headers = {"Authorization": "${v}", "note": "a b c d e f g h i j k l"}`
    );
    expect(pickLiteral(lits)!.literal.body).toBe(v);
    expect(pickLiteral(lits)!.certain).toBe(false);
  });

  it('is null without literals and certain with one', () => {
    expect(pickLiteral([])).toBeNull();
    expect(pickLiteral(stringLiterals('k = "x"'))!.certain).toBe(true);
  });
});

describe('names and the replacement', () => {
  it('suggests the variable, keyword or key name, else the type', () => {
    const v = fake();
    const name = (line: string) =>
      suggestName(line, pickLiteral(stringLiterals(line))!.literal, 'AWS Access Key');
    expect(name(`api_key = "${v}"`)).toBe('api_key');
    expect(name(`client = Client(token="${v}")`)).toBe('token');
    expect(name(`cfg = {"ibm-token": "${v}"}`)).toBe('ibm-token');
    expect(name(`key: str = "${v}"`)).toBe('key');
    expect(name(`print("${v}")`)).toBe('aws_access_key');
  });

  it('makes valid secret names', () => {
    expect(toSecretName('AWS Access Key')).toBe('AWS_Access_Key');
    expect(toSecretName('_private')).toBe('private');
    expect(toSecretName('123')).toBeNull();
    expect(toSecretName('x'.repeat(80))).toHaveLength(64);
  });

  it('writes the call, with .encode() for bytes, and only for valid names', () => {
    expect(secretsCall('ibm_token')).toBe('secrets.get("ibm_token")');
    expect(secretsCall('k', true)).toBe('secrets.get("k").encode()');
    expect(() => secretsCall('bad name")')).toThrow(TypeError);
  });

  it('replaces the literal on the given line only', () => {
    const v = fake();
    const source = `import x\ntoken = "${v}"\nprint(token)`;
    const line = sourceLine(source, 2)!;
    const lit = stringLiterals(line)[0];
    const out = replaceOnLine(source, 2, lit, secretsCall('token'));
    expect(out).toBe('import x\ntoken = secrets.get("token")\nprint(token)');
    expect(out).not.toContain(v);
    expect(() => replaceOnLine('short', 1, lit, 'x')).toThrow(RangeError);
    expect(sourceLine(source, 0)).toBeNull();
    expect(sourceLine(source, 4)).toBeNull();
  });

  it('masks every literal of the line in the dialog', () => {
    const v = fake();
    const line = `connect("${v}", user="alice")`;
    const lits = stringLiterals(line);
    const masked = maskedLine(line, lits, 0);
    expect(masked).toBe(`connect(«${v.length} characters», user=«…»)`);
    expect(masked).not.toContain(v);
  });
});

describe('the secrets import', () => {
  it('recognises the import forms', () => {
    expect(hasSecretsImport(['x = 1', SECRETS_IMPORT])).toBe(true);
    expect(hasSecretsImport(['from jupyter_qsecure import (submit, secrets)'])).toBe(true);
    expect(hasSecretsImport(['import jupyter_qsecure.secrets as secrets'])).toBe(true);
    expect(hasSecretsImport(['# from jupyter_qsecure import secrets'])).toBe(false);
    expect(hasSecretsImport(['from jupyter_qsecure import secretsx'])).toBe(false);
    expect(hasSecretsImport([])).toBe(false);
  });

  it('adds it at the top of a cell, not into a cell magic', () => {
    expect(withSecretsImport('x = 1')).toBe(`${SECRETS_IMPORT}\nx = 1`);
    expect(withSecretsImport('%%qsubmit\nqc')).toBeNull();
  });
});
