"""How app/tickets/service.py orders EPM's updates: DecisionTime, then EndTime (earlier is later), then arrival;
a missing time is unknown and matches."""
from datetime import datetime

import pytest

from app import contract
from app.tickets.service import compare_states, is_same_state, later_outcome

T1, T2, T3 = datetime(2026, 11, 20, 15, 12, 2), datetime(2026, 11, 20, 15, 20, 40), datetime(2026, 11, 20, 15, 42, 3)


def state(decision="Approved", decided=T1, ends=T3):
    return {"final_decision": decision, "final_decision_time": decided, "final_end_time": ends}


@pytest.mark.parametrize("new, recorded, order", [
    (state("Denied", T2, T2), state(), 1),           # a revocation is decided later
    (state(), state("Denied", T2, T2), -1),          # the approval re-sent after it
    (state(ends=T2), state(), 1),                    # same decision time, the session ended early
    (state(), state(ends=T2), -1),                   # the original end re-sent after the early end
    (state(decided=None), state(), 0),               # unknown decision time: no time tells
    (state(decided=None, ends=T2), state(), 1),      # ... the end time still does
    (state("Denied", None, None), state(), 0),       # nothing tells: arrival decides
])
def test_states_are_ordered_by_decision_time_then_end_time(new, recorded, order):
    assert compare_states(new, recorded) == order


@pytest.mark.parametrize("new, recorded, same", [
    (state(), state(), True),
    (state("approved"), state(), True),              # EPM's text, whatever its letter case
    (state(decided=None), state(), True),            # reconciled without its decision time, then the webhook
    (state(), state(decided=None, ends=None), True),
    (state("Denied"), state(), False),
    (state(ends=T2), state(), False),
    (state(decided=T2), state(), False),
    (state(None), state(), False),
])
def test_a_true_duplicate_has_the_same_decision_and_no_time_that_differs(new, recorded, same):
    assert is_same_state(new, recorded) is same


@pytest.mark.parametrize("kind, recorded, new, outcome", [
    (contract.KIND_ADMIN, state(), state("Denied", T2, T2), contract.EPM_OUTCOME_REVOKED),
    (contract.KIND_ADMIN, state(), state(ends=T2), contract.EPM_OUTCOME_ENDED_EARLY),
    (contract.KIND_ADMIN, state(), state(decided=T2), None),  # re-timed, same end: nothing to name
    (contract.KIND_ADMIN, state("Denied"), state("Denied", T2), None),
    (contract.KIND_APPLICATION, state(ends=None), state("Denied", T2, None), contract.EPM_OUTCOME_CHANGED),
])
def test_a_newer_state_is_named_for_what_it_did(kind, recorded, new, outcome):
    assert later_outcome(kind, recorded, new, None) == outcome


def test_a_later_update_keeps_the_outcome_already_recorded():
    revoked = state("Denied", T2, T2)
    assert later_outcome(contract.KIND_ADMIN, revoked, state("Denied", T3, T2), contract.EPM_OUTCOME_REVOKED) == (
        contract.EPM_OUTCOME_REVOKED)
