import {
  describeError,
  encodePath,
  normaliseStatus,
  IHttpResponse,
  IRequestInit,
  QSecureApiError,
  QSecureClient,
  Routes,
  SECRET_NAME_HTML_PATTERN,
  SECRET_NAME_PATTERN
} from '../api';

/** A fake server: records each request and answers from a queue. */
function fakeServer(...answers: Array<[number, unknown]>) {
  const calls: Array<{ url: string; init: IRequestInit }> = [];
  const request = async (url: string, init: IRequestInit): Promise<IHttpResponse> => {
    calls.push({ url, init });
    const next = answers.shift();
    if (!next) {
      throw new TypeError('network down');
    }
    const [status, body] = next;
    const text = typeof body === 'string' ? body : body === undefined ? '' : JSON.stringify(body);
    return { status, text: async () => text };
  };
  return { calls, client: new QSecureClient('/user/alice/', request) };
}

describe('Routes', () => {
  it('joins the base URL and the prefix with one slash', () => {
    expect(Routes.status('/')).toBe('/qsecure/api/status');
    expect(Routes.status('/user/alice')).toBe('/user/alice/qsecure/api/status');
    expect(Routes.status('http://h:8888/base/')).toBe('http://h:8888/base/qsecure/api/status');
  });

  it('repeats kernel= for each kernel id', () => {
    expect(Routes.status('/', ['k1', 'a b'])).toBe('/qsecure/api/status?kernel=k1&kernel=a%20b');
  });

  it('builds the secret routes and refuses names outside the contract', () => {
    expect(Routes.secrets('/')).toBe('/qsecure/api/secrets');
    expect(Routes.secret('/', 'ibm_token')).toBe('/qsecure/api/secrets/ibm_token');
    expect(Routes.secret('/', 'A-b_9')).toBe('/qsecure/api/secrets/A-b_9');
    for (const bad of ['', '9lives', 'a/b', '../x', 'a.b', 'x'.repeat(65), 'a b']) {
      expect(() => Routes.secret('/', bad)).toThrow(TypeError);
    }
    expect(Routes.secret('/', 'x'.repeat(64))).toContain('x'.repeat(64));
  });

  it('builds the ledger routes with their query', () => {
    expect(Routes.jobs('/')).toBe('/qsecure/api/ledger/jobs');
    expect(Routes.jobs('/', { limit: 50, status: 'denied' })).toBe(
      '/qsecure/api/ledger/jobs?limit=50&status=denied'
    );
    const id = 'ab'.repeat(16);
    expect(Routes.job('/', id)).toBe(`/qsecure/api/ledger/jobs/${id}`);
    expect(() => Routes.job('/', 'AB'.repeat(16))).toThrow(TypeError);
    expect(() => Routes.job('/', '../status')).toThrow(TypeError);
    expect(Routes.verifyLedger('/')).toBe('/qsecure/api/ledger/verify');
  });

  it('builds save-anyway, review and promote', () => {
    expect(Routes.saveAnyway('/')).toBe('/qsecure/api/save-anyway');
    expect(Routes.reviewStatus('/', 'dir/my nb.ipynb')).toBe(
      '/qsecure/api/review/status?path=dir%2Fmy%20nb.ipynb'
    );
    expect(Routes.reviewApprove('/')).toBe('/qsecure/api/review/approve');
    expect(Routes.promote('/')).toBe('/qsecure/api/promote');
  });

  it('encodes contents paths segment by segment', () => {
    expect(encodePath('a b/c#d/é.ipynb')).toBe('a%20b/c%23d/%C3%A9.ipynb');
    expect(encodePath('/x//y/')).toBe('x/y');
  });
});

describe('QSecureClient', () => {
  it('sends a secret value only in the PUT body', async () => {
    const { calls, client } = fakeServer([
      201,
      { name: 'tok', location: 'l', version: 1, created: true }
    ]);
    const value = `fake-${Math.random().toString(36).slice(2)}`;
    const stored = await client.storeSecret('tok', value);
    expect(stored.created).toBe(true);
    expect(calls).toHaveLength(1);
    expect(calls[0].init.method).toBe('PUT');
    expect(calls[0].url).toBe('/user/alice/qsecure/api/secrets/tok');
    expect(calls[0].url).not.toContain(value);
    expect(JSON.parse(calls[0].init.body!)).toEqual({ value });
  });

  it('refuses an empty value without a request', async () => {
    const { calls, client } = fakeServer();
    await expect(client.storeSecret('tok', '')).rejects.toThrow('empty');
    expect(calls).toHaveLength(0);
  });

  it("reads the contract's error body", async () => {
    const { client } = fakeServer([
      503,
      {
        error: 'openbao_unavailable',
        message: 'OpenBao does not answer',
        hint: 'jupyter qsecure vault status'
      }
    ]);
    const err: QSecureApiError = await client.listSecrets().catch(e => e);
    expect(err).toBeInstanceOf(QSecureApiError);
    expect(err.status).toBe(503);
    expect(err.code).toBe('openbao_unavailable');
    expect(err.message).toBe('OpenBao does not answer');
    expect(err.hint).toBe('jupyter qsecure vault status');
    expect(err.missingRoute).toBe(false);
  });

  it('tells a missing route (HTML 404) from a 404 of the contract', async () => {
    const { client } = fakeServer(
      [404, '<html>404: Not Found</html>'],
      [404, { error: 'not_found', message: 'no job 00…' }]
    );
    const missing: QSecureApiError = await client.reviewStatus('a.ipynb').catch(e => e);
    expect(missing.missingRoute).toBe(true);
    expect(missing.code).toBe('http_404');
    const notFound: QSecureApiError = await client.job('0'.repeat(32)).catch(e => e);
    expect(notFound.missingRoute).toBe(false);
    expect(notFound.code).toBe('not_found');
  });

  it('posts save-anyway with path, reason and model', async () => {
    const { calls, client } = fakeServer([200, { path: 'a.ipynb', qsecure: { mode: 'override' } }]);
    const model = { type: 'notebook', format: 'json', content: { cells: [] } };
    await client.saveAnyway('a.ipynb', 'test fixture key, revoked', model);
    expect(calls[0].init.method).toBe('POST');
    expect(calls[0].url).toBe('/user/alice/qsecure/api/save-anyway');
    expect(JSON.parse(calls[0].init.body!)).toEqual({
      path: 'a.ipynb',
      reason: 'test fixture key, revoked',
      model
    });
  });

  it('passes kernel ids, job filters and the promote folder', async () => {
    const { calls, client } = fakeServer(
      [200, {}],
      [200, { jobs: [] }],
      [200, { out_dir: 'out' }],
      [200, {}]
    );
    await client.status(['k1']);
    await client.listJobs({ limit: 5 });
    await client.promote('a.ipynb', 'out');
    await client.promote('a.ipynb');
    expect(calls.map(c => c.url)).toEqual([
      '/user/alice/qsecure/api/status?kernel=k1',
      '/user/alice/qsecure/api/ledger/jobs?limit=5',
      '/user/alice/qsecure/api/promote',
      '/user/alice/qsecure/api/promote'
    ]);
    expect(JSON.parse(calls[2].init.body!)).toEqual({ path: 'a.ipynb', out_dir: 'out' });
    expect(JSON.parse(calls[3].init.body!)).toEqual({ path: 'a.ipynb' });
  });

  describe('reviewAvailable', () => {
    it('uses the features the server lists', async () => {
      const { calls, client } = fakeServer([200, { features: ['secrets'] }]);
      expect(await client.reviewAvailable()).toBe(false);
      expect(calls).toHaveLength(1);
    });

    it('probes the route when the server lists no features, and caches the answer', async () => {
      const { calls, client } = fakeServer([200, {}], [404, '<html>not found</html>']);
      expect(await client.reviewAvailable('a.ipynb')).toBe(false);
      expect(await client.reviewAvailable('a.ipynb')).toBe(false);
      expect(calls).toHaveLength(2);
    });

    it('counts a route that answers with the contract (even an error) as there', async () => {
      const { client } = fakeServer([200, {}], [400, { error: 'bad_request', message: 'path?' }]);
      expect(await client.reviewAvailable('')).toBe(true);
    });

    it('asks again after a network error', async () => {
      const { client } = fakeServer();
      expect(await client.reviewAvailable()).toBe(false);
      const again = fakeServer([200, { features: ['review'] }]);
      (client as any).request = (again.client as any).request;
      expect(await client.reviewAvailable()).toBe(true);
    });
  });
});

describe('normaliseStatus', () => {
  it("keeps the contract's fields", () => {
    const status = normaliseStatus({
      version: '0.2.0',
      user: 'alice',
      environment: 'dev',
      save_mode: 'block',
      allow_override: false,
      openbao: {
        configured: true,
        address: 'http://127.0.0.1:8200',
        embedded: true,
        reachable: true,
        sealed: false,
        error: null
      },
      kernels: [
        {
          kernel_id: 'k1',
          name: 'qsecure',
          credentials: 'active',
          expires_at: '2025-01-01T12:30:00Z',
          seconds_left: 17.5,
          renewable: true,
          secrets: ['a'],
          errors: {}
        }
      ],
      ledger: { url: 'sqlite:///l.db', entries: 3, checkpoint: null },
      features: ['review']
    });
    expect(status.user).toBe('alice');
    expect(status.openbao.reachable).toBe(true);
    expect(status.kernels[0].seconds_left).toBe(17.5);
    expect(status.features).toEqual(['review']);
  });

  it('fills what an older server leaves out, never claiming OpenBao is reachable', () => {
    const status = normaliseStatus({
      version: '0.1.0',
      environment: 'dev',
      save_mode: 'block',
      ledger: { entries: 2 }
    });
    expect(status.user).toBe('?');
    expect(status.openbao).toEqual({
      configured: false,
      address: null,
      embedded: null,
      reachable: null,
      sealed: null,
      error: null
    });
    expect(status.kernels).toEqual([]);
    expect(status.features).toBeUndefined();
    expect(normaliseStatus('<html>').environment).toBe('?');
  });
});

describe('describeError', () => {
  const trans = {
    __: (m: string, ...a: any[]) => m.replace(/%(\d)/g, (_, i) => String(a[Number(i) - 1]))
  };
  it('gives message and hint, a missing route, or the network failure', () => {
    expect(
      describeError(
        new QSecureApiError(503, { error: 'x', message: 'down', hint: 'start it' }, ''),
        trans
      )
    ).toBe('down (start it)');
    expect(describeError(new QSecureApiError(404, null, 'GET /x answered 404'), trans)).toMatch(
      /no such route/
    );
    expect(describeError(new QSecureApiError(403, null, ''), trans)).toMatch(/Not allowed \(403\)/);
    expect(describeError(new TypeError('Failed to fetch'), trans)).toBe(
      'The server could not be reached: Failed to fetch'
    );
  });
});

describe('SECRET_NAME_HTML_PATTERN', () => {
  it('compiles as browsers compile <input pattern> (v flag) and agrees with the name rule', () => {
    const html = new RegExp(`^(?:${SECRET_NAME_HTML_PATTERN})$`, 'v');
    for (const name of [
      'a',
      'ibm_token',
      'A-b_9',
      'x'.repeat(64),
      '',
      '9a',
      'a b',
      'a.b',
      'x'.repeat(65),
      '-a'
    ]) {
      expect(html.test(name)).toBe(SECRET_NAME_PATTERN.test(name));
    }
  });
});
