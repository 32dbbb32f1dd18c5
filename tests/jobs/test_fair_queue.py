"""FairQueue: round robin across owners, FIFO within one owner."""

from __future__ import annotations

import pytest

from jupyter_qsecure.jobs.fair_queue import FairQueue


def owner_of(item: str) -> str:
    return item.split("-", 1)[0]


def drain(queue: FairQueue[str]) -> list[str]:
    return [queue.popleft() for _ in range(len(queue))]


def test_a_newcomer_is_served_within_one_turn_of_a_long_backlog() -> None:
    queue: FairQueue[str] = FairQueue(owner_of)
    for i in range(50):
        queue.append(f"a-{i}")
    queue.append("b-0")
    order = drain(queue)
    assert order.index("b-0") == 1  # a-0, then b's turn: not after a's 50 jobs
    assert [x for x in order if x.startswith("a-")] == [f"a-{i}" for i in range(50)]


def test_owners_take_turns_and_keep_their_own_order() -> None:
    queue: FairQueue[str] = FairQueue(owner_of)
    for item in ["a-0", "a-1", "a-2", "b-0", "b-1", "c-0"]:
        queue.append(item)
    assert len(queue) == 6 and queue.owners == 3
    assert queue.count("a") == 3 and queue.count("b") == 2 and queue.count("z") == 0
    assert drain(queue) == ["a-0", "b-0", "c-0", "a-1", "b-1", "a-2"]
    assert not queue and queue.owners == 0


def test_an_owner_that_comes_back_joins_at_the_back() -> None:
    queue: FairQueue[str] = FairQueue(owner_of)
    queue.append("a-0")
    queue.append("b-0")
    assert queue.popleft() == "a-0"  # a has nothing left: out of the rotation
    queue.append("a-1")  # back, behind b
    assert drain(queue) == ["b-0", "a-1"]


def test_remove_contains_iterate_and_clear() -> None:
    queue: FairQueue[str] = FairQueue(owner_of)
    for item in ["a-0", "a-1", "b-0"]:
        queue.append(item)
    assert "a-1" in queue and "b-1" not in queue and 42 not in queue
    queue.remove("a-0")
    queue.remove("b-0")
    assert queue.owners == 1 and sorted(queue) == ["a-1"]
    with pytest.raises(ValueError):
        queue.remove("b-0")
    with pytest.raises(ValueError):
        queue.remove("a-7")
    queue.clear()
    assert len(queue) == 0
    with pytest.raises(IndexError):
        queue.popleft()


def test_popleft_where_takes_the_first_eligible_owner_in_rotation() -> None:
    queue: FairQueue[str] = FairQueue(owner_of)
    for item in ["a-0", "a-1", "b-0", "c-0", "c-1"]:
        queue.append(item)
    assert queue.popleft_where(lambda owner: owner in ("b", "c")) == "b-0"
    assert queue.popleft_where(lambda owner: owner == "z") is None
    assert queue.popleft_where(lambda owner: owner == "c") == "c-0"  # c to the back
    assert drain(queue) == ["a-0", "c-1", "a-1"]
