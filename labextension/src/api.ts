/**
 * The REST contract of the jupyter-qsecure server extension, as the front end
 * uses it: every URL and every JSON shape lives in this one file.
 *
 * The contract is docs/rest-api.md (user routes under `{base_url}qsecure/api/`).
 * Review and promotion (`review/…`, `promote`) are listed in `features` of
 * `GET status`; the UI checks that before it shows them, and still works with an
 * older server without them ({@link QSecureClient.reviewAvailable}).
 *
 * This module is pure TypeScript (no JupyterLab import at run time) so Jest tests
 * it without a browser: the HTTP call is injected as a {@link Requester}; in the
 * extension that is `ServerConnection.makeRequest` with the app's server settings
 * (see connection.ts), which adds the token, cookies and XSRF header.
 */

// ---------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------

/** `dev`, `test` or `prod` (the server's `c.QSecure.environment`). */
export type Environment = 'dev' | 'test' | 'prod' | string;

/** Credential state of one kernel (`GET status`, `kernels[]`). */
export interface IKernelCredentials {
  kernel_id: string;
  name: string | null;
  credentials: 'active' | 'none' | 'error' | string;
  expires_at: string | null;
  seconds_left: number | null;
  renewable: boolean | null;
  secrets: string[];
  errors: Record<string, string>;
}

export interface IOpenBaoState {
  configured: boolean;
  address: string | null;
  embedded: boolean | null;
  reachable: boolean | null;
  sealed: boolean | null;
  error: string | null;
}

/** `GET status`. */
export interface IStatus {
  version: string;
  user: string;
  environment: Environment;
  save_mode: 'block' | 'redact' | 'warn' | string;
  allow_override: boolean;
  openbao: IOpenBaoState;
  kernels: IKernelCredentials[];
  ledger: { url: string; entries: number; checkpoint: unknown };
  /** Optional list of feature names the server offers (e.g. `"review"`). */
  features?: string[];
}

export interface ISecretLease {
  kernel_id: string;
  expires_at: string | null;
  seconds_left: number | null;
  renewable: boolean | null;
}

export interface ISecretEntry {
  name: string;
  source: 'store' | 'config' | string;
  location: string;
  kind: 'kv' | 'database' | string;
  version: number | null;
  updated_at: string | null;
  leases: ISecretLease[];
}

/** `GET secrets`. */
export interface ISecretList {
  environment: Environment;
  prefix: string;
  writable: boolean;
  secrets: ISecretEntry[];
}

/** `PUT secrets/NAME`. */
export interface ISecretStored {
  name: string;
  location: string;
  version: number | null;
  created: boolean;
}

export type JobDecision = 'allowed' | 'denied' | 'pending_approval' | string;

/** One job of `GET ledger/jobs`. */
export interface IJobSummary {
  job_id: string;
  decision_id: string;
  decided_at: string;
  user: string;
  status: string;
  decision: JobDecision;
  rule: string | null;
  message: string | null;
  circuits: number;
  circuit_hashes: string[];
  backend: string | null;
  shots: number | null;
  tags: string[];
  signature_verified: boolean | null;
  ledger_index: number;
}

export interface ILedgerEntry {
  index: number;
  kind: string;
  timestamp: string;
  actor: string;
  body: Record<string, unknown>;
  leaf_hash: string;
}

/** Counts of one circuit: bit string to count. */
export type Counts = Record<string, number>;

export interface IJobResult {
  /** One mapping per circuit, or one mapping for a single circuit. */
  counts: Counts | Counts[];
  metadata: Record<string, unknown>;
  envelope: unknown;
}

export interface IInclusionProof {
  index: number;
  proof: unknown;
  verified: boolean;
}

/** `GET ledger/jobs/ID` (ID: a job id or a decision id). */
export interface IJobDetail {
  job: IJobSummary;
  entries: ILedgerEntry[];
  manifest: unknown;
  statement: unknown;
  result: IJobResult | null;
  verification: { verified: boolean | null; problems: string[] } | null;
  proofs: IInclusionProof[];
}

/** `POST ledger/verify`. */
export interface ILedgerVerification {
  ok: boolean;
  entries: number;
  checkpoints: number;
  signatures: number;
  problems: string[];
  seconds: number;
}

/** Where in a notebook a secret was found (design.md section 3). */
export type FindingWhere = 'source' | 'outputs' | 'metadata' | 'attachments';

/** One finding of a refusal. Never holds the secret itself. */
export interface IFinding {
  path: string;
  /** 0-based index of the cell, or null for notebook-level metadata. */
  cell: number | null;
  cell_id: string | null;
  where: FindingWhere | null;
  /** 0-based index in the cell's outputs, or null. */
  output: number | null;
  mime: string | null;
  /** 1-based line within that text. */
  line: number;
  type: string;
  /** Hex digest identifying the secret (SHA-256 or a keyed fingerprint). */
  hashed_secret: string | null;
  /** The number JupyterLab shows for the cell (from 1), when the server sends it. */
  cell_number: number | null;
  /** The server's text for people, e.g. `cell 2, line 3`. */
  location: string | null;
}

/** The 422 body of `PUT /api/contents/PATH` when the save gate refuses. */
export interface ISaveRefusal {
  message: string;
  reason: string;
  mode: string;
  path: string | null;
  findings: IFinding[];
  recovery_id: string | null;
  /** True when this content was refused before (no new recovery copy or ledger entry). */
  repeat: boolean;
  refused_at: string | null;
  override: { allowed: boolean; reason_min_length: number };
}

/** A contents model to save (what `PUT /api/contents/PATH` takes). */
export interface ISaveModel {
  type?: string;
  format?: string | null;
  content?: unknown;
  [key: string]: unknown;
}

/** `POST save-anyway` answers with the saved contents model plus this. */
export interface ISaveAnywayResult {
  [key: string]: unknown;
  qsecure?: {
    mode: string;
    ledger_index: number;
    findings: unknown[];
    message: string;
  };
}

// ---- Review and promotion (docs/rest-api.md, "Review and promotion") ------------
// Shaped after `jupyter qsecure review status --json` (ApprovalCheck.to_json) and
// `promote` (PromotionResult): `GET review/status?path=`, `POST review/approve
// {path, note?}` and `POST promote {path, out_dir?}`; paths are contents paths.

/** Where a notebook stands in review. */
export interface IReviewStatus {
  notebook: string;
  environment: string;
  /** `approved` (enough approvals of this version), `changed` (an earlier version was approved), `unapproved`. */
  status: 'approved' | 'changed' | 'unapproved' | string;
  approved: boolean;
  required: number;
  approvers: string[];
  last_editor: string | null;
  /** Why the policy is not satisfied (empty when it is). */
  reasons: string[];
  /** Cells changed since the approved version, numbered as JupyterLab shows them (from 1). */
  changed_cells: number[];
  /** Cells of the approved version that were removed (numbered from 1, in that version). */
  removed_cells: number[];
  kernelspec_changed: boolean;
}

/** `POST review/approve`: the approval made, and the notebook's status afterwards. */
export interface IReviewApproval {
  notebook?: string;
  digest?: string;
  environment?: string;
  reviewer?: string;
  source?: string;
  key_id?: string;
  note?: string;
  approved_at?: string;
  position?: number;
  ledger_index?: number;
  warnings?: string[];
  /** The status after the approval (as `GET review/status`). */
  review?: unknown;
  [key: string]: unknown;
}

/** `POST promote`: where the promoted script went (a refusal is an error with the reason). */
export interface IPromotionResult {
  out_dir: string | null;
  /** The files written (script, lock, approvals, signed provenance), as contents paths. */
  files: string[];
  /** The script's contents path. */
  script: string | null;
  /** The signed provenance (in-toto envelope) and the SHA-256 of its file. */
  manifest: { path: string; sha256: string } | null;
  approvers: string[];
  ledger_index: number | null;
}

/** A review status from the server, every field present (tolerant of older shapes). */
export function normaliseReviewStatus(raw: unknown): IReviewStatus {
  const body = isObject(raw) ? raw : {};
  const numbers = (value: unknown): number[] =>
    Array.isArray(value) ? value.filter((n): n is number => Number.isInteger(n) && n >= 1) : [];
  const strings = (value: unknown): string[] =>
    Array.isArray(value) ? value.filter((s): s is string => typeof s === 'string') : [];
  const status =
    typeof body.status === 'string'
      ? body.status
      : typeof body.state === 'string'
        ? body.state
        : 'unapproved';
  return {
    notebook:
      typeof body.notebook === 'string'
        ? body.notebook
        : typeof body.path === 'string'
          ? body.path
          : '',
    environment: typeof body.environment === 'string' ? body.environment : '',
    status,
    approved: body.approved === true || (body.approved === undefined && status === 'approved'),
    required: typeof body.required === 'number' ? body.required : 1,
    approvers: strings(body.approvers),
    last_editor: typeof body.last_editor === 'string' ? body.last_editor : null,
    reasons: strings(body.reasons),
    changed_cells: numbers(body.changed_cells),
    removed_cells: numbers(body.removed_cells),
    kernelspec_changed: body.kernelspec_changed === true
  };
}

/** A promotion result from the server (`files` as a list or a name -> digest map). */
export function normalisePromotion(raw: unknown): IPromotionResult {
  const body = isObject(raw) ? raw : {};
  const dir = body.out_dir ?? body.output_dir;
  const files = Array.isArray(body.files)
    ? body.files.filter((f): f is string => typeof f === 'string')
    : isObject(body.files)
      ? Object.keys(body.files)
      : [];
  const manifest = isObject(body.manifest) ? body.manifest : null;
  return {
    out_dir: typeof dir === 'string' ? dir : null,
    files,
    script: typeof body.script === 'string' ? body.script : null,
    manifest:
      manifest && typeof manifest.path === 'string' && typeof manifest.sha256 === 'string'
        ? { path: manifest.path, sha256: manifest.sha256 }
        : null,
    approvers: Array.isArray(body.approvers)
      ? body.approvers.filter((a): a is string => typeof a === 'string')
      : [],
    ledger_index: typeof body.ledger_index === 'number' ? body.ledger_index : null
  };
}

// ---------------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------------

/** The prefix of every route, relative to the server's base URL. */
export const API_PREFIX = 'qsecure/api';

/** Encode a contents path segment by segment (slashes stay). */
export function encodePath(path: string): string {
  return path
    .split('/')
    .filter(part => part.length > 0)
    .map(encodeURIComponent)
    .join('/');
}

function join(baseUrl: string, ...parts: string[]): string {
  const base = baseUrl.endsWith('/') ? baseUrl : baseUrl + '/';
  return base + [API_PREFIX, ...parts].join('/');
}

function query(params: Array<[string, string | number | undefined | null]>): string {
  const parts = params
    .filter(([, value]) => value !== undefined && value !== null && value !== '')
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
  return parts.length ? '?' + parts.join('&') : '';
}

/** A secret's name: a letter, then letters, digits, `_`, `-` (at most 64 characters). */
export const SECRET_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/**
 * The same rule for an `<input pattern>`: browsers compile it with the `v` flag
 * (anchored), where a `-` in a class must be escaped.
 */
export const SECRET_NAME_HTML_PATTERN = '[A-Za-z][A-Za-z0-9_\\-]{0,63}';

/** A job id or decision id: 32 hex digits. */
export const JOB_ID_PATTERN = /^[0-9a-f]{32}$/;

/** Every route of the contract, as a URL under the given base URL. */
export const Routes = {
  status(baseUrl: string, kernelIds: string[] = []): string {
    return join(baseUrl, 'status') + query(kernelIds.map(id => ['kernel', id]));
  },
  secrets(baseUrl: string): string {
    return join(baseUrl, 'secrets');
  },
  secret(baseUrl: string, name: string): string {
    if (!SECRET_NAME_PATTERN.test(name)) {
      throw new TypeError(`not a secret name: ${JSON.stringify(name)}`);
    }
    return join(baseUrl, 'secrets', encodeURIComponent(name));
  },
  jobs(baseUrl: string, options: { limit?: number; status?: string } = {}): string {
    return (
      join(baseUrl, 'ledger', 'jobs') +
      query([
        ['limit', options.limit],
        ['status', options.status]
      ])
    );
  },
  job(baseUrl: string, id: string): string {
    if (!JOB_ID_PATTERN.test(id)) {
      throw new TypeError(`not a job or decision id (32 hex digits): ${JSON.stringify(id)}`);
    }
    return join(baseUrl, 'ledger', 'jobs', id);
  },
  verifyLedger(baseUrl: string): string {
    return join(baseUrl, 'ledger', 'verify');
  },
  saveAnyway(baseUrl: string): string {
    return join(baseUrl, 'save-anyway');
  },
  reviewStatus(baseUrl: string, path: string): string {
    return join(baseUrl, 'review', 'status') + query([['path', path]]);
  },
  reviewApprove(baseUrl: string): string {
    return join(baseUrl, 'review', 'approve');
  },
  promote(baseUrl: string): string {
    return join(baseUrl, 'promote');
  }
};

// ---------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------

/** An answer other than 2xx, with the contract's `{error, message, hint}` when given. */
export class QSecureApiError extends Error {
  readonly status: number;
  /** The contract's machine code (`not_found`, `forbidden`, …), or `http_STATUS`. */
  readonly code: string;
  readonly hint: string | null;
  /** True when the route itself does not exist on this server (404 not from us). */
  readonly missingRoute: boolean;
  /** The contract's error body with any extra fields (e.g. a refusal's `cell`), or `{}`. */
  readonly details: Record<string, unknown>;

  constructor(status: number, body: unknown, fallback: string) {
    const parsed = errorBody(body);
    super(parsed?.message ?? fallback);
    this.name = 'QSecureApiError';
    this.status = status;
    this.code = parsed?.error ?? `http_${status}`;
    this.hint = parsed?.hint ?? null;
    this.missingRoute = status === 404 && parsed === null;
    this.details = parsed !== null && isObject(body) ? body : {};
  }
}

function errorBody(body: unknown): { error: string; message: string; hint: string | null } | null {
  if (!isObject(body) || typeof body.error !== 'string' || typeof body.message !== 'string') {
    return null;
  }
  return {
    error: body.error,
    message: body.message,
    hint: typeof body.hint === 'string' ? body.hint : null
  };
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * `GET status` with every field the UI reads present: a server older than the
 * contract (no `openbao`, no `kernels`, no `user`) still gives a usable answer,
 * and an unknown OpenBao state is shown as unknown, never as reachable.
 */
export function normaliseStatus(raw: unknown): IStatus {
  const body = isObject(raw) ? raw : {};
  const bao = isObject(body.openbao) ? body.openbao : {};
  const text = (value: unknown, fallback: string): string =>
    typeof value === 'string' && value ? value : fallback;
  const flag = (value: unknown): boolean | null => (typeof value === 'boolean' ? value : null);
  const ledger = isObject(body.ledger) ? body.ledger : {};
  return {
    version: text(body.version, '?'),
    user: text(body.user, '?'),
    environment: text(body.environment, '?'),
    save_mode: text(body.save_mode, '?'),
    allow_override: body.allow_override === true,
    openbao: {
      configured: bao.configured === true,
      address: typeof bao.address === 'string' ? bao.address : null,
      embedded: flag(bao.embedded),
      reachable: flag(bao.reachable),
      sealed: flag(bao.sealed),
      error: typeof bao.error === 'string' ? bao.error : null
    },
    kernels: Array.isArray(body.kernels)
      ? body.kernels.filter(isObject).map(k => ({
          kernel_id: text(k.kernel_id, ''),
          name: typeof k.name === 'string' ? k.name : null,
          credentials: text(k.credentials, 'none'),
          expires_at: typeof k.expires_at === 'string' ? k.expires_at : null,
          seconds_left: typeof k.seconds_left === 'number' ? k.seconds_left : null,
          renewable: flag(k.renewable),
          secrets: Array.isArray(k.secrets)
            ? k.secrets.filter((n): n is string => typeof n === 'string')
            : [],
          errors: isObject(k.errors) ? (k.errors as Record<string, string>) : {}
        }))
      : [],
    ledger: {
      url: text(ledger.url, ''),
      entries: typeof ledger.entries === 'number' ? ledger.entries : 0,
      checkpoint: ledger.checkpoint ?? null
    },
    ...(Array.isArray(body.features)
      ? { features: body.features.filter((f): f is string => typeof f === 'string') }
      : {})
  };
}

/** An error for people: the contract's message and hint, a missing route, or the network. */
export function describeError(
  err: unknown,
  trans: { __: (msg: string, ...args: any[]) => string }
): string {
  if (err instanceof QSecureApiError) {
    if (err.missingRoute) {
      return trans.__(
        'This server does not offer this yet (no such route): the jupyter-qsecure server extension may be older than the front end.'
      );
    }
    if (err.status === 401 || err.status === 403) {
      if (err.code.startsWith('http_')) {
        return trans.__('Not allowed (%1): sign in again, or ask for access.', err.status);
      }
    }
    return err.hint ? `${err.message} (${err.hint})` : err.message;
  }
  const message = err instanceof Error ? err.message : String(err);
  return trans.__('The server could not be reached: %1', message);
}

// ---------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------

/** The part of a fetch `Response` the client reads. */
export interface IHttpResponse {
  readonly status: number;
  text(): Promise<string>;
}

export interface IRequestInit {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  body?: string;
}

/** Makes one authenticated request to the Jupyter server. */
export type Requester = (url: string, init: IRequestInit) => Promise<IHttpResponse>;

/** Typed calls of every user route. */
export class QSecureClient {
  constructor(
    readonly baseUrl: string,
    private readonly request: Requester
  ) {}

  async status(kernelIds: string[] = []): Promise<IStatus> {
    return normaliseStatus(
      await this.call<unknown>(Routes.status(this.baseUrl, kernelIds), { method: 'GET' })
    );
  }

  listSecrets(): Promise<ISecretList> {
    return this.call<ISecretList>(Routes.secrets(this.baseUrl), { method: 'GET' });
  }

  /** Store (create or rotate) a value. The value goes only into this request's body. */
  storeSecret(name: string, value: string): Promise<ISecretStored> {
    if (value.length === 0) {
      return Promise.reject(new TypeError('the value is empty'));
    }
    return this.call<ISecretStored>(Routes.secret(this.baseUrl, name), {
      method: 'PUT',
      body: JSON.stringify({ value })
    });
  }

  deleteSecret(name: string): Promise<{ name: string; deleted: boolean }> {
    return this.call(Routes.secret(this.baseUrl, name), { method: 'DELETE' });
  }

  listJobs(options: { limit?: number; status?: string } = {}): Promise<{ jobs: IJobSummary[] }> {
    return this.call(Routes.jobs(this.baseUrl, options), { method: 'GET' });
  }

  job(id: string): Promise<IJobDetail> {
    return this.call<IJobDetail>(Routes.job(this.baseUrl, id), { method: 'GET' });
  }

  verifyLedger(): Promise<ILedgerVerification> {
    return this.call<ILedgerVerification>(Routes.verifyLedger(this.baseUrl), {
      method: 'POST',
      body: '{}'
    });
  }

  saveAnyway(path: string, reason: string, model: ISaveModel): Promise<ISaveAnywayResult> {
    return this.call<ISaveAnywayResult>(Routes.saveAnyway(this.baseUrl), {
      method: 'POST',
      body: JSON.stringify({ path, reason, model })
    });
  }

  async reviewStatus(path: string): Promise<IReviewStatus> {
    return normaliseReviewStatus(
      await this.call<unknown>(Routes.reviewStatus(this.baseUrl, path), { method: 'GET' })
    );
  }

  approve(path: string, note?: string): Promise<IReviewApproval> {
    const body: Record<string, string> = { path };
    if (note) {
      body.note = note;
    }
    return this.call<IReviewApproval>(Routes.reviewApprove(this.baseUrl), {
      method: 'POST',
      body: JSON.stringify(body)
    });
  }

  /** Promote; a refusal (not approved, a secret, not Python…) is a QSecureApiError with the reason. */
  async promote(path: string, outDir?: string): Promise<IPromotionResult> {
    const body: Record<string, string> = { path };
    if (outDir) {
      body.out_dir = outDir;
    }
    return normalisePromotion(
      await this.call<unknown>(Routes.promote(this.baseUrl), {
        method: 'POST',
        body: JSON.stringify(body)
      })
    );
  }

  /**
   * Whether this server has the review/promotion routes. Uses `features` from
   * `GET status` when the server lists them; otherwise asks `review/status` once:
   * a 404 that is not the contract's JSON error means the route does not exist.
   * The answer is cached (a server does not grow routes while the page is open).
   */
  reviewAvailable(probePath = ''): Promise<boolean> {
    if (this._review === null) {
      this._review = this.probeReview(probePath).catch(() => {
        this._review = null; // a network error: ask again next time
        return false;
      });
    }
    return this._review;
  }

  private async probeReview(probePath: string): Promise<boolean> {
    const status = await this.status();
    if (Array.isArray(status.features)) {
      return status.features.includes('review');
    }
    try {
      await this.reviewStatus(probePath);
      return true;
    } catch (err) {
      if (err instanceof QSecureApiError) {
        return !err.missingRoute && err.status !== 405;
      }
      throw err;
    }
  }

  private _review: Promise<boolean> | null = null;

  private async call<T>(url: string, init: IRequestInit): Promise<T> {
    const response = await this.request(url, init);
    const text = await response.text();
    let body: unknown = null;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        body = null; // Jupyter's HTML error pages
      }
    }
    if (response.status < 200 || response.status >= 300) {
      throw new QSecureApiError(
        response.status,
        body,
        `${init.method} ${url.split('?')[0]} answered ${response.status}`
      );
    }
    return body as T;
  }
}
