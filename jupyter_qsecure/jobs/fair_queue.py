"""The job queue in front of the workers: round robin across users, FIFO within a user.

One user's backlog must not delay another user's job: with a single FIFO, 56 queued
jobs of one user made another user's 10-shot job wait for all of them. Here every
owner (the broker passes the identity's usage key, ``environment:user``) has its own
FIFO, and owners take turns: the next job dispatched is the oldest job of the owner
at the head of the rotation, who then moves to the back if it has more waiting. A
user who starts submitting while another has 50 jobs queued is therefore served
within ``number of owners with waiting jobs`` dispatches, whatever the backlog.

Turns are by job, not by cost (plain round robin rather than deficit round robin
weighted by shots): every job is already bounded by the policy's limits, and a job's
real cost (transpile, noise, qubits) is not known before it runs.

Not thread-safe on its own: the executors call it under their lock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["FairQueue"]

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Waiting items per owner, dispatched in round robin across owners.

    ``owner_of(item)`` names an item's owner. The interface is the part of
    ``collections.deque`` the executors use (``append``, ``popleft``, ``remove``,
    ``clear``, ``len``, ``in``, iteration), so a FIFO and this queue are
    interchangeable.
    """

    def __init__(self, owner_of: Callable[[T], str]) -> None:
        self._owner_of = owner_of
        # Owners with waiting items, in rotation order (the head is served next).
        self._by_owner: OrderedDict[str, deque[T]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __contains__(self, item: object) -> bool:
        try:
            owner = self._owner_of(item)  # type: ignore[arg-type]
        except AttributeError:
            return False
        waiting = self._by_owner.get(owner)
        return waiting is not None and item in waiting

    def __iter__(self) -> Iterator[T]:
        """Every waiting item (owner by owner, not in dispatch order)."""
        for waiting in list(self._by_owner.values()):
            yield from list(waiting)

    def count(self, owner: str) -> int:
        """Items ``owner`` has waiting."""
        waiting = self._by_owner.get(owner)
        return len(waiting) if waiting is not None else 0

    @property
    def owners(self) -> int:
        """Owners with at least one waiting item."""
        return len(self._by_owner)

    def append(self, item: T) -> None:
        """Queue ``item`` behind its owner's earlier items; a new owner joins the
        rotation at the back."""
        owner = self._owner_of(item)
        waiting = self._by_owner.get(owner)
        if waiting is None:
            waiting = self._by_owner[owner] = deque()
        waiting.append(item)
        self._size += 1

    def popleft(self) -> T:
        """The next item to dispatch: the oldest of the owner whose turn it is."""
        if not self._by_owner:
            raise IndexError("pop from an empty FairQueue")
        owner, waiting = next(iter(self._by_owner.items()))
        item = waiting.popleft()
        self._size -= 1
        if waiting:
            self._by_owner.move_to_end(owner)  # its turn is over: to the back
        else:
            del self._by_owner[owner]
        return item

    def any_owner(self, eligible: Callable[[str], bool]) -> bool:
        """True if an owner with an item waiting is ``eligible`` (nothing is taken)."""
        return any(eligible(owner) for owner in self._by_owner)

    def popleft_where(self, eligible: Callable[[str], bool]) -> T | None:
        """The next item of the first owner in rotation order that is ``eligible``
        (None if no owner is); that owner's turn is used up as with :meth:`popleft`."""
        owner = next((o for o in self._by_owner if eligible(o)), None)
        if owner is None:
            return None
        waiting = self._by_owner[owner]
        item = waiting.popleft()
        self._size -= 1
        if waiting:
            self._by_owner.move_to_end(owner)
        else:
            del self._by_owner[owner]
        return item

    def remove(self, item: T) -> None:
        """Take ``item`` out (a cancelled job); ValueError if it is not waiting."""
        owner = self._owner_of(item)
        waiting = self._by_owner.get(owner)
        if waiting is None:
            raise ValueError("FairQueue.remove(item): item not waiting")
        waiting.remove(item)  # ValueError if absent
        self._size -= 1
        if not waiting:
            del self._by_owner[owner]

    def clear(self) -> None:
        self._by_owner.clear()
        self._size = 0
