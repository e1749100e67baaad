"""`controllers.shared.SpecMemo`: a spec is resolved once per (uid, generation)."""

from __future__ import annotations

from typing import Any

import pytest

from modelfs.api.v1 import Model, ModelSource, ModelSync
from modelfs.controllers import shared
from modelfs.pkg.dataset import ResolutionError, resolve


def parsed(cls: Any, name: str, spec: dict[str, Any], generation: int | None = 1) -> Any:
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": generation}
    return cls.model_validate({"metadata": meta, "spec": spec})


SOURCE = parsed(ModelSource, "src", {"type": "HTTP"})


def model(repo: str, generation: int | None = 1) -> Model:
    spec = {"sourceRef": "src", "versionConfigs": {"v1": {"repo": repo}}}
    return parsed(Model, "mdl", spec, generation)  # type: ignore[no-any-return]


SYNC = parsed(ModelSync, "sync", {"modelRef": "mdl", "version": "v1"})


def test_a_resolution_is_computed_once_per_generation_and_round() -> None:
    calls: list[int] = []
    memo: shared.SpecMemo[int] = shared.SpecMemo(4)

    def compute() -> int:
        calls.append(1)
        return 7

    for _ in range(3):
        assert memo.get(("a", 1), compute) == 7
    assert calls == [1]
    first = shared.resolved(SOURCE, model("https://h/a/"), SYNC, data_sync_round=1)
    again = shared.resolved(SOURCE, model("https://h/a/"), SYNC, data_sync_round=1)
    assert again is first
    raised = shared.resolved(SOURCE, model("https://h/a/"), SYNC, data_sync_round=2)
    assert raised is not first and raised.dataset.spec.data_sync_round == 2
    changed = shared.resolved(SOURCE, model("https://h/b/", generation=2), SYNC, data_sync_round=1)
    assert changed.uri != first.uri  # a new generation is resolved anew
    assert changed.uri == resolve(SOURCE, model("https://h/b/"), SYNC).uri


def test_no_generation_no_memo_and_errors_are_raised_every_time() -> None:
    bad = model("not a url", generation=None)
    with pytest.raises(ResolutionError) as first:
        shared.resolved(SOURCE, bad, SYNC, data_sync_round=1)
    with pytest.raises(ResolutionError):
        shared.resolved(SOURCE, bad, SYNC, data_sync_round=1)
    remembered = model("not a url", generation=9)
    for _ in range(3):
        with pytest.raises(ResolutionError) as again:
            shared.resolved(SOURCE, remembered, SYNC, data_sync_round=1)
        assert str(again.value) == str(first.value)
        assert len(list(_frames(again.value))) < 6  # the traceback does not grow per raise


def _frames(error: BaseException) -> Any:
    tb = error.__traceback__
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_the_memo_is_bounded_least_recently_used_first() -> None:
    memo: shared.SpecMemo[str] = shared.SpecMemo(2)
    memo.get("a", lambda: "A")
    memo.get("b", lambda: "B")
    memo.get("a", lambda: "never")  # a is used again: b is now the oldest
    memo.get("c", lambda: "C")
    assert list(memo.entries) == ["a", "c"]
