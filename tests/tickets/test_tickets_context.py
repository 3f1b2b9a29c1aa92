"""Earlier requests for the same application and by the same user, and when to suggest an EPM policy."""
from datetime import timedelta

import pytest

from app import contract
from app.db import write_transaction
from app.decisions import service as decisions
from app.models import ApplicationAccessTicket, Decision, Task, database, utcnow
from app.tickets import outcome
from app.tickets.context import AWAITING, FAILED_TO_SEND, LOOKBACK, decision_context
from tests import factories

OTHER_HASHES = {"sha1Hash": "0" * 40, "sha256Hash": "1" * 64}


@pytest.fixture
def opened(make_ticket):
    """Open an application ticket `days_ago` days back, as EPM would deliver it."""
    def open_ticket(days_ago=0, **request_info):
        return make_ticket(factories.application_request(**request_info), age=timedelta(days=days_ago, minutes=1))
    return open_ticket


@pytest.fixture
def decide_in_epm(deliver):
    """Deliver EPM's final decision on `task`, made `days_ago` days back."""
    def decide(task, decision=contract.DECISION_APPROVED, by="jchen", days_ago=1):
        made = f"{utcnow() - timedelta(days=days_ago):%Y-%m-%dT%H:%M:%SZ}"
        answer = deliver(factories.application_decision(task.request_id, Decision=decision,
                                                        DecisionPerformedByUser=by, DecisionTime=made))
        assert answer.status_code == 200, answer.get_data(as_text=True)
    return decide


def test_a_first_request_has_no_earlier_requests(opened):
    context = decision_context(opened(), 5)
    assert context.same_application is None and context.same_user is None
    assert not context.suggest_policy


def test_the_same_hash_is_the_same_application_whatever_its_name(opened):
    earlier = opened(days_ago=3, productName="Renamed installer", publisher="Someone else", user="CORP\\other")
    current = opened()
    group = decision_context(current, 5).same_application
    assert group.total == 1
    assert [request.number for request in group.requests] == [earlier.number]


def test_the_same_publisher_and_product_is_the_same_application_whatever_its_hash(opened):
    earlier = opened(days_ago=2, user="CORP\\other", **OTHER_HASHES)
    opened(days_ago=1, productName="Another product", user="CORP\\other", **OTHER_HASHES)
    group = decision_context(opened(), 5).same_application
    assert [request.number for request in group.requests] == [earlier.number]


def test_later_requests_are_not_earlier_ones(opened):
    current = opened(days_ago=2)
    opened(days_ago=1)
    assert decision_context(current, 5).same_application is None


def test_outcomes_say_how_each_was_decided_and_by_whom(opened, decide_in_epm):
    approved, denied, waiting = opened(days_ago=4), opened(days_ago=3), opened(days_ago=2)
    decide_in_epm(approved, by="jchen")
    decide_in_epm(denied, contract.DECISION_DENIED, by="mlopez")
    group = decision_context(opened(), 5).same_application
    by_number = {request.number: (request.outcome, request.decided_by) for request in group.requests}
    assert by_number == {approved.number: ("Approved", "jchen"), denied.number: ("Denied", "mlopez"),
                         waiting.number: (AWAITING, "")}
    assert dict(group.outcomes) == {"Approved": 1, "Denied": 1, AWAITING: 1}


def test_a_broker_decision_not_yet_acknowledged_says_it_is_being_sent(opened, approver):
    earlier = opened(days_ago=1)
    decisions.decide(earlier, approver, contract.DECISION_APPROVED, "ok", "once", send_now=False)
    request = decision_context(opened(), 5).same_application.requests[0]
    assert (request.outcome, request.decided_by) == ("Approved - sending to EPM", approver.username)


def test_requests_by_the_same_user_include_other_applications_and_admin_access(opened, make_ticket):
    other_app = opened(days_ago=2, productName="Another product", user="CORP\\mrivera", **OTHER_HASHES)
    admin = make_ticket(factories.admin_request(UserName="CORP\\mrivera"), age=timedelta(days=1))
    opened(days_ago=1, productName="Third product", user="CORP\\somebody", sha1Hash="2" * 40, sha256Hash="3" * 64)
    group = decision_context(opened(user="CORP\\mrivera"), 5).same_user
    assert {request.number for request in group.requests} == {other_app.number, admin.number}


def test_repeated_approvals_in_30_days_suggest_a_policy(opened, decide_in_epm):
    for days_ago in (1, 2, 3, 4, 5):
        decide_in_epm(opened(days_ago=days_ago), days_ago=days_ago)
    context = decision_context(opened(), 5)
    assert context.recent_approvals == 5
    assert context.suggest_policy


def test_approvals_older_than_30_days_and_denials_do_not_count(opened, decide_in_epm):
    for days_ago in (1, 2, 3):
        decide_in_epm(opened(days_ago=days_ago), days_ago=days_ago)
    decide_in_epm(opened(days_ago=40), days_ago=40)
    decide_in_epm(opened(days_ago=4), contract.DECISION_DENIED, days_ago=4)
    context = decision_context(opened(), 4)
    assert context.recent_approvals == 3
    assert not context.suggest_policy


def test_a_threshold_of_zero_never_suggests_a_policy(opened, decide_in_epm):
    decide_in_epm(opened(days_ago=1))
    assert not decision_context(opened(), 0).suggest_policy


def test_a_hash_that_is_not_hex_is_not_matched_as_text(opened):
    opened(days_ago=1, sha256Hash="%", sha1Hash="%", publisher="P1", productName="X1", user="CORP\\a")
    current = opened(sha256Hash="%", sha1Hash="%", publisher="P2", productName="X2", user="CORP\\b")
    assert Task.select().count() == 2
    assert decision_context(current, 5).same_application is None


def test_requests_before_the_lookback_window_are_not_searched(opened):
    opened(days_ago=LOOKBACK.days + 1)
    current = opened(days_ago=0)
    assert decision_context(current, 5).same_application is None


def queries_for(task, monkeypatch):
    """How many SQL statements working out `task`'s context runs."""
    return len(statements_for(task, monkeypatch))


def statements_for(task, monkeypatch):
    """The SQL statements working out `task`'s context runs."""
    statements = []
    bound = database.obj
    real = bound.execute_sql

    def counted(sql, *args, **kwargs):
        statements.append(sql)
        return real(sql, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(bound, "execute_sql", counted)
        decision_context(task, 5)
    return statements


def test_earlier_requests_are_read_from_their_tickets_alone(opened, decide_in_epm, approver, monkeypatch):
    decide_in_epm(opened(days_ago=3))
    decisions.decide(opened(days_ago=2), approver, contract.DECISION_APPROVED, "ok", "once", send_now=False)
    sent = statements_for(opened(), monkeypatch)
    assert not any(Decision._meta.table_name in sql for sql in sent), "no decision is read"
    assert sum(ApplicationAccessTicket._meta.table_name in sql for sql in sent) == 1, "only the ticket's own record"


def test_the_number_of_queries_does_not_grow_with_earlier_requests(opened, decide_in_epm, monkeypatch):
    for days_ago in (5, 4):
        decide_in_epm(opened(days_ago=days_ago), days_ago=days_ago)
    few = queries_for(opened(days_ago=3), monkeypatch)
    assert few >= 4
    for days_ago in (2, 2, 2, 1):
        decide_in_epm(opened(days_ago=days_ago), days_ago=days_ago)
    assert queries_for(opened(), monkeypatch) == few


def test_a_decision_epm_refused_says_it_failed_to_send(opened, approver):
    earlier = opened(days_ago=1)
    with write_transaction():  # as the delivery records EPM's refusal
        Decision.create(task=earlier, decision=contract.DECISION_APPROVED, reason="ok", duration_unit="once",
                        decided_by=approver.username, ticket_url="https://broker.example/t",
                        status=contract.DELIVERY_FAILED)
        outcome.refresh(earlier)
    assert decision_context(opened(), 5).same_application.requests[0].outcome == FAILED_TO_SEND


def test_a_hash_in_other_letters_is_the_same_file(opened):
    earlier = opened(days_ago=1, sha256Hash="AB" * 32, sha1Hash="0" * 40, productName="Other", user="CORP\\a")
    current = opened(sha256Hash="ab" * 32, sha1Hash="1" * 40, productName="Another", user="CORP\\b")
    assert [request.number for request in decision_context(current, 5).same_application.requests] == [earlier.number]


def test_the_same_sha1_alone_is_the_same_file(opened):
    earlier = opened(days_ago=1, sha256Hash=None, sha1Hash="c" * 40, productName="Other", user="CORP\\a")
    current = opened(sha256Hash="d" * 64, sha1Hash="C" * 40, productName="Another", user="CORP\\b")
    assert [request.number for request in decision_context(current, 5).same_application.requests] == [earlier.number]


def test_names_as_long_as_a_ticket_keeps_them_in_any_script_are_stored_and_listed(opened, decide_in_epm):
    """An earlier-request index entry holds what it compares and the outcome, never the listed names: a
    publisher, product and user of 255 characters of four bytes each would pass PostgreSQL's limit of an index
    entry (about 2.7 kB) and fail the delivery."""
    def scattered(first, step):  # characters that do not repeat in a pattern PostgreSQL's compression could fold
        return "".join(chr(first + (index * step) % 1500) for index in range(300))

    names = {"publisher": scattered(0x1F300, 7919), "productName": scattered(0x20000, 104729),
             "user": "CORP\\" + scattered(0x1F900, 1299709)}
    earlier = opened(days_ago=2, **names)
    decide_in_epm(earlier, by=scattered(0x2A000, 15485863))
    group = decision_context(opened(**names), 5).same_application

    (listed,) = group.requests
    assert (listed.number, listed.outcome) == (earlier.number, contract.DECISION_APPROVED)
    assert listed.subject == names["productName"][:255] and listed.requester == names["user"][:255]
