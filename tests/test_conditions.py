"""set_condition: the one way statuses change their conditions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modelfs.api.v1 import Condition, ConditionStatus, find_condition, is_true, set_condition

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


def test_a_new_condition_gets_the_time_and_goes_last() -> None:
    first = set_condition([], "Resolved", True, "Resolved", "ok", 3, now=T0)
    both = set_condition(first, "Ready", False, "Pending", "waiting", 3, now=T0)
    assert [c.type for c in both] == ["Resolved", "Ready"]
    ready = find_condition(both, "Ready")
    assert ready == Condition(
        type="Ready",
        status=ConditionStatus.FALSE,
        reason="Pending",
        message="waiting",
        last_transition_time=T0,
        observed_generation=3,
    )
    assert first == [both[0]]  # the input list is not changed


def test_transition_time_moves_only_when_status_changes() -> None:
    conditions = set_condition([], "Ready", False, "Pending", "a", 1, now=T0)
    reworded = set_condition(conditions, "Ready", False, "StillPending", "b", 2, now=T1)
    assert reworded[0].last_transition_time == T0
    assert (reworded[0].reason, reworded[0].message, reworded[0].observed_generation) == (
        "StillPending",
        "b",
        2,
    )
    flipped = set_condition(reworded, "Ready", True, "Ready", "", 2, now=T1)
    assert flipped[0].last_transition_time == T1
    assert is_true(flipped, "Ready") and not is_true(reworded, "Ready")


statuses = st.sampled_from(list(ConditionStatus))
updates = st.lists(
    st.tuples(st.sampled_from(["Ready", "Resolved", "Allowed"]), statuses, st.text(max_size=5)),
    max_size=20,
)


@settings(max_examples=300)
@given(updates)
def test_conditions_stay_unique_and_times_track_status(steps: list[tuple[str, str, str]]) -> None:
    conditions: list[Condition] = []
    for index, (type_, status, reason) in enumerate(steps):
        now = f"2026-01-01T00:00:{index:02d}Z"
        before = find_condition(conditions, type_)
        conditions = set_condition(conditions, type_, status, reason, now=now)
        after = find_condition(conditions, type_)
        assert after is not None and after.status == status
        if before is not None and before.status == status:
            assert after.last_transition_time == before.last_transition_time
        else:
            assert after.last_transition_time == now
        assert len({c.type for c in conditions}) == len(conditions)
