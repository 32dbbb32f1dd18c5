"""Brokered, policy-checked, signed and recorded circuit execution (``%qsubmit``).

Core logic only (no Tornado, no Jupyter Server imports); the server extension's
REST handlers are a thin layer over :class:`jupyter_qsecure.jobs.service.JobService`.

Modules and their contracts (kept stable; other parts rely on them):

``canonical``  ``circuit_hash(qc) -> str`` (SHA-256 hex) and ``canonical_form(qc) -> dict``:
               identical across processes and sessions for the same circuit; parameters by
               name; deterministic gate order (QPY/QASM3 are not canonical).
``manifest``   in-toto Statement v1 in a DSSE envelope: ``build_job_statement(...)``,
               ``build_result_statement(...)``, ``sign_envelope(statement, signer) -> Envelope``,
               ``verify_envelope(envelope, keyring) -> dict`` (the statement); signers are the
               ledger's (OpenBao transit, or local Ed25519), verification needs public keys only.
``policy``     ``Policy`` (versioned file per environment, hash recorded) and
               ``PolicyEngine.decide(request, identity) -> Decision``; limits, allow-lists,
               rate limits and quotas per identity, heavy-run approval.
``executor``   ``LocalExecutor`` (Aer in worker processes, bounded queue, timeouts,
               cancellation) and ``DaskExecutor`` (scale-out), implemented in
               ``local_executor``/``dask_executor`` over ``executor_base``;
               ``aer_run.run_aer(payload) -> dict`` runs a job wherever it lands.
``declared``   ``check_declared(items, rules, environment) -> Excess | None``: what the
               circuits declare (QPY headers, OpenQASM declarations), checked against the
               policy before anything parses them; ``MalformedCircuit`` for a malformed
               request or an ``include`` of anything but the standard library.
``parse_pool`` ``ParsePool.parse(items, bind) -> ParsedCircuits``: circuits parsed and
               canonicalised in worker processes with memory and CPU limits
               (``parse_worker``), never in the server.
``service``    ``JobService``: authenticate (kernel token -> identity), check declared sizes,
               parse (in a worker), decide, sign, record, execute, sign the result, record;
               ``replay(job_id)``.

REST API served by the extension (``/qsecure/api/jobs``), authenticated with the kernel's
short-lived OpenBao token (``Authorization: Bearer <token>``), never by what the client claims:

- ``POST /qsecure/api/jobs``: ``{"circuits": [{"format": "qpy"|"qasm2"|"qasm3", "data": str}],
  "shots": int, "seed": int|null, "backend": "aer_simulator", "method": str|null,
  "noise": str|null, "tags": [str], "bind": {name: float}|null, "wait": bool,
  "request_id": str}`` -> 200 ``JobRecord`` when finished (wait), 202 when queued,
  403 policy denial ``{"error": "denied", "rule", "limit", "message", "decision_id"}``
  (also for declared sizes, before parsing: ``max_circuits_per_job``, ``max_qubits``,
  ``max_clbits`` = max_qubits x max_depth), 401 bad token, 409 replayed request id, 413
  oversized payload, 422 invalid circuit, an ``include`` other than ``qelib1.inc`` /
  ``stdgates.inc``, a circuit that broke the parse worker's memory or CPU limit, or a
  field not listed here, 429 queue full (``Retry-After``; ``{"retry_after", "scope":
  "user"|"global", "limit"}``: this user's share of the queue, or the whole queue), for
  waiting and non-waiting submissions alike and before anything is decided or recorded,
  503 OpenBao, the ledger or the parse workers unavailable (``{"message", "hint",
  "job_id", "status": "failed"}`` once a job was decided).
  Waiting jobs are dispatched in round robin across users (``fair_queue``); rate limits,
  quotas and queue shares follow the identity's stable user name (the Jupyter or Hub
  user, or the OS user on a single-user server), never a per-session id.
- ``GET /qsecure/api/jobs/ID`` -> ``JobRecord``; ``DELETE /qsecure/api/jobs/ID`` cancels.
- ``GET /qsecure/api/jobs/keys`` -> public keys that verify manifests and results.

``JobRecord``: ``{"job_id", "status": queued|pending_approval|running|completed|failed|
cancelled|denied`` (``status.JobStatus``; ``queued`` waits for a worker, ``running`` has
one), ``"identity", "decision": {...}, "manifest": Envelope, "result":
{"counts": [...], "metadata": {...}} | null, "result_envelope": Envelope | null,
"error": str | null, "circuit_hashes": [...], "transpiled_hashes": [...]}``.
"""
