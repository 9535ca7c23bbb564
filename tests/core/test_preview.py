"""``--show-records``: a fair sample of each action, so a few rejects among many records are seen."""

from __future__ import annotations

from segport.contract import Record
from segport.pipeline.planner import Reject, Send, Step, Unchanged
from segport.pipeline.preview import Preview


def _create(i: int) -> Send:
    record = Record(key=f"p{i:05d}", email=f"p{i}@example.com", fields={"FNAME": "A"}, upsert=True, new=True)
    return Send(record=record, digest=b"d", markers=frozenset(), seq=1)


def _exit(i: int) -> Send:
    record = Record(key=f"x{i:05d}", email=f"x{i}@example.com", fields={}, remove=frozenset({"VIP"}))
    return Send(record=record, digest=b"d", markers=frozenset(), seq=None)


def test_rejects_and_exits_among_a_thousand_creates_are_listed_first_with_what_was_left_out() -> None:
    steps: list[Step] = [_create(i) for i in range(1000)]
    steps += [Unchanged(count=3)]
    steps += [Reject(key=f"r{i}", email="bad", reason="invalid email") for i in range(5)]
    steps += [_exit(i) for i in range(2)]
    preview = Preview(limit=20)
    assert list(preview.watch(iter(steps))) == steps  # the run's steps pass unchanged
    actions = [item["action"] for item in preview.records]
    assert actions == ["reject"] * 5 + ["exit"] * 2 + ["create"] * 20
    assert preview.listed_of == 1007
    assert preview.not_shown() == {"create": 980}


def test_no_limit_lists_nothing_but_counts_everything() -> None:
    preview = Preview(limit=0)
    list(preview.watch(iter([_create(1), Reject(key="r", email="", reason="no email")])))
    assert preview.records == [] and preview.listed_of == 2
    assert preview.not_shown() == {"create": 1, "reject": 1}
