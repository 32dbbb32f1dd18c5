"""Coalesce concurrent signing requests into batched calls (group commit for signatures).

A transit signature costs one HTTP round trip to OpenBao, and OpenBao signs a batch of a
few hundred messages in about the time it takes to sign one. :class:`BatchingSigner`
wraps a signer that has ``sign_many`` (:class:`~jupyter_qsecure.signing.transit.TransitSigner`)
so that threads signing at the same time share calls: the first caller signs what is
queued; callers that arrive while a call is in flight queue their messages and the next
leader signs them all in one call. A lone caller pays no added delay (nothing waits for
a batch to fill), and under load the number of calls grows with the number of busy
moments, not with the number of messages.

Written here rather than taken from a library: the leader/follower hand-off is a few
lines over ``threading.Condition``, the same scheme the ledger's group commit uses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from .signers import Algorithm, PublicKeyRecord, SignatureRecord

__all__ = ["BatchingSigner"]


class _Request:
    __slots__ = ("messages", "records", "error", "done")

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages
        self.records: list[SignatureRecord] = []
        self.error: BaseException | None = None
        self.done = False


class BatchingSigner:
    """A ``Signer`` whose concurrent ``sign``/``sign_many`` calls share batched calls.

    ``inner`` must have ``sign_many(messages) -> list[SignatureRecord]`` (one record per
    message, in order) and be safe to call from ``max_concurrent`` threads at once (that
    many batched calls may be in flight). ``max_batch`` bounds the messages one leader
    takes at once (a single request larger than that is passed whole; ``inner`` splits
    it). An error of the batched call is raised in every caller whose messages were in
    it.
    """

    def __init__(self, inner: Any, *, max_batch: int = 200, max_concurrent: int = 1) -> None:
        if not callable(getattr(inner, "sign_many", None)):
            raise TypeError("BatchingSigner needs a signer with sign_many()")
        if max_batch < 1 or max_concurrent < 1:
            raise ValueError(
                f"max_batch and max_concurrent must be >= 1, got {max_batch}, {max_concurrent}"
            )
        self.inner = inner
        self.max_batch = max_batch
        self.max_concurrent = max_concurrent
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        #: Notified when a request is queued, for observers (tests, statistics) only: a
        #: caller never waits for another's request to be queued, and waking the callers
        #: that wait on ``_cond`` for nothing costs each a thread switch.
        self._queued = threading.Condition(lock)
        self._queue: list[_Request] = []
        self._in_flight = 0
        self.calls = 0  # batched calls made (for tests and statistics)

    # ---- Signer protocol -----------------------------------------------------------------
    @property
    def key_id(self) -> str:
        return str(self.inner.key_id)

    @property
    def algorithm(self) -> Algorithm:
        return self.inner.algorithm  # type: ignore[no-any-return]

    def public_keys(self) -> list[PublicKeyRecord]:
        return self.inner.public_keys()  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:  # addr, mount, ensure_key, rotate, ...
        return getattr(self.inner, name)

    def sign(self, message: bytes) -> SignatureRecord:
        return self.sign_many([message])[0]

    def sign_many(self, messages: Iterable[bytes]) -> list[SignatureRecord]:
        request = _Request(list(messages))
        if not request.messages:
            return []
        with self._cond:
            self._queue.append(request)
            self._queued.notify_all()  # observers only; no caller waits for this
            while True:
                while (
                    self._in_flight >= self.max_concurrent or request not in self._queue
                ) and not request.done:
                    self._cond.wait()
                if request.done:
                    break
                batch = self._take_locked()
                self._in_flight += 1
                self.calls += 1
                self._cond.release()
                try:
                    self._sign_batch(batch)
                finally:
                    self._cond.acquire()
                    self._in_flight -= 1
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        return request.records

    def _take_locked(self) -> list[_Request]:
        batch = [self._queue.pop(0)]
        size = len(batch[0].messages)
        while self._queue and size + len(self._queue[0].messages) <= self.max_batch:
            size += len(self._queue[0].messages)
            batch.append(self._queue.pop(0))
        return batch

    def _sign_batch(self, batch: list[_Request]) -> None:
        messages = [message for request in batch for message in request.messages]
        try:
            records = list(self.inner.sign_many(messages))
            if len(records) != len(messages):
                raise RuntimeError(
                    f"signer {self.key_id} returned {len(records)} signatures for "
                    f"{len(messages)} messages"
                )
        except BaseException as exc:  # every waiting caller must learn of it
            for request in batch:
                request.error, request.done = exc, True
            return
        offset = 0
        for request in batch:
            count = len(request.messages)
            request.records = records[offset : offset + count]
            request.done = True
            offset += count
