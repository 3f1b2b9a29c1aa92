"""Teams through a Workflows webhook: a card per new ticket with an "Open ticket" action, and a second card once
the decision is final."""
import dataclasses
from datetime import timedelta

import pytest

from app import claims
from app.chat import outbox, teams
from app.chat.models import STATUS_SENDING, ChatPost
from app.decisions import delivery
from app.decisions.service import decide
from app.models import Task, utcnow
from tests import factories
from tests.chat.fake_teams import FakeTeams


@pytest.fixture
def fake_teams():
    with FakeTeams() as fake:
        yield fake


@pytest.fixture
def app_settings(fake_teams):
    return {"teams_webhook_url": fake_teams.url, "public_url": "https://jit.example.com"}


def _facts(card):
    return {fact["title"]: fact["value"] for element in card["body"] if element["type"] == "FactSet"
            for fact in element["facts"]}


def test_a_new_ticket_posts_a_card_with_its_facts_and_an_open_ticket_action(ticket, fake_teams):
    assert outbox.send_due() == 1
    assert outbox.send_due() == 0
    [card] = fake_teams.cards
    assert card["version"] == "1.4"
    assert ticket.number in card["body"][0]["text"]
    facts = _facts(card)
    assert facts["Requested by"] == ticket.requester and facts["Host"] == ticket.host
    assert facts["Reason"] == ticket.jit_request.reason
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open ticket",
                                "url": f"https://jit.example.com/tickets/{ticket.number}"}]


def test_a_second_card_says_the_decision_is_final(ticket, fake_teams, approver, fake_epm):
    outbox.send_due()
    decide(Task.get_by_id(ticket.id), approver, "Denied", "Not now")
    outbox.send_due()
    assert len(fake_teams.cards) == 2
    assert "decision final" in fake_teams.cards[1]["body"][0]["text"]
    assert "Denied by jchen: sent to EPM and acknowledged" in _facts(fake_teams.cards[1])["Outcome"]
    outbox.queue_change(ticket)
    outbox.send_due()
    assert len(fake_teams.cards) == 2  # one final card, whatever happens after


def test_a_decision_not_yet_final_sends_no_card(ticket, fake_teams, approver):
    outbox.send_due()
    decide(Task.get_by_id(ticket.id), approver, "Denied", "Not now", send_now=False)
    outbox.send_due()
    assert len(fake_teams.cards) == 1
    assert delivery.Decision.get().status == "pending"


def test_a_huge_request_still_fits_teams_limit(make_ticket, fake_teams):
    long = "y" * 3900
    make_ticket(factories.application_request(reason=long, productName=long, productDescription=long,
                                              user=long[:200], hostName=long[:200]))
    assert outbox.send_due() == 1
    assert fake_teams.refused == []


def test_a_webhook_that_fails_is_retried_without_its_url_in_the_error(ticket, fake_teams, caplog):
    fake_teams.status = 503
    assert outbox.send_due() == 0
    post = ChatPost.get()
    assert post.status == "pending" and "HTTP 503" in post.last_error
    assert "secret-signature" not in post.last_error and "secret-signature" not in caplog.text


@pytest.mark.parametrize("echoed", ["the address", "the query", "the signature"])
def test_a_webhook_answer_echoing_its_address_is_stored_without_its_signature(ticket, fake_teams, echoed):
    query = fake_teams.url.split("?", 1)[1]
    said = {"the address": fake_teams.url, "the query": query, "the signature": "secret-signature"}[echoed]
    fake_teams.status, fake_teams.answer = 400, f"refused the workflow call: {said} is not valid"
    assert outbox.send_due() == 0
    last_error = ChatPost.get().last_error
    assert last_error.startswith("the Teams webhook answered HTTP 400: refused the workflow call: ********")
    assert "secret-signature" not in last_error


def test_a_webhook_asking_to_wait_is_left_alone_that_long(ticket, fake_teams):
    fake_teams.status, fake_teams.retry_after = 429, 300
    assert outbox.send_due() == 0
    post = ChatPost.get()
    assert post.status == "pending" and "HTTP 429" in post.last_error
    assert post.next_attempt_at >= utcnow() + timedelta(seconds=290)


def test_cards_queued_for_teams_are_skipped_once_it_is_switched_off(app, ticket, fake_teams, caplog):
    app.extensions["settings"] = dataclasses.replace(app.extensions["settings"], teams_webhook_url="")
    assert outbox.send_due() == 0
    post = ChatPost.get()
    assert (post.status, post.last_error) == ("skipped", "Teams is no longer configured")
    ChatPost.update(next_attempt_at=post.created_at).execute()
    assert outbox.send_due() == 0
    assert ChatPost.get().attempts == 1, "nothing left to try"
    assert fake_teams.cards == [] and "failed" not in caplog.text


def _taken_over_while_sending(monkeypatch):
    """Teams answers so late that the attempt outlives its claim: another process claims the row for the next
    attempt meanwhile."""
    send_cards = teams.send_cards

    def slow(*args):
        ChatPost.update(claimed_until=claims.database_now() - timedelta(seconds=1)).execute()
        assert claims.claim_attempt(ChatPost, ChatPost.get().id, 60)
        return send_cards(*args)

    monkeypatch.setattr(teams, "send_cards", slow)


@pytest.mark.parametrize("late_answer", [202, 503], ids=["sent", "failed"])
def test_a_late_outcome_of_an_attempt_past_its_claim_leaves_the_next_attempt_s_claim_alone(
        ticket, fake_teams, monkeypatch, caplog, late_answer):
    fake_teams.status = late_answer
    _taken_over_while_sending(monkeypatch)

    assert outbox.send_due() == 0

    post = ChatPost.get()
    assert (post.status, post.attempts) == (STATUS_SENDING, 2)
    assert post.claimed_until > claims.database_now(), "still claimed by the attempt that took it over"
    assert (post.sent_revision, post.sent_at, post.last_error, post.not_before) == (0, None, None, None)
    assert [record.levelname for record in caplog.records
            if f"chat row {post.id} " in record.getMessage() and "attempt 1 is dropped" in record.getMessage()
            ] == ["INFO"]


def test_a_late_outcome_is_dropped_after_the_row_was_sent_queued_again_and_claimed_anew(
        ticket, fake_teams, monkeypatch):
    """Queuing a row again starts its attempts over: the attempt claiming it then has the late one's number, and
    still the late outcome is not its own."""
    send_cards = teams.send_cards

    def slow(*args):
        row = ChatPost.get()
        ChatPost.update(claimed_until=claims.database_now() - timedelta(seconds=1)).execute()
        taken_over = claims.claim_attempt(ChatPost, row.id, 60)  # attempt 2 takes it over and sends it
        assert claims.release_attempt(ChatPost, taken_over, status="sent", sent_revision=row.revision)
        outbox.queue_change(ticket)  # the ticket changed: due again, its attempts started over
        ChatPost.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
        assert claims.claim_attempt(ChatPost, row.id, 60)  # attempt 1 again, by another process
        return send_cards(*args)

    monkeypatch.setattr(teams, "send_cards", slow)
    fake_teams.status = 503
    assert outbox.send_due() == 0

    post = ChatPost.get()
    assert (post.status, post.attempts, post.last_error) == (STATUS_SENDING, 1, None)
    assert post.claimed_until > claims.database_now(), "still claimed by the attempt that claimed it anew"


def test_a_card_a_late_attempt_got_out_is_not_sent_again_when_the_attempt_that_took_over_failed(
        ticket, fake_teams, monkeypatch):
    """The card is in the channel and cannot be taken back: the row says so, whichever attempt posted it."""
    post = teams.post

    def slow(card):
        monkeypatch.setattr(teams, "post", post)
        ChatPost.update(claimed_until=claims.database_now() - timedelta(seconds=1)).execute()
        fake_teams.status = 503
        assert outbox.send_post(ChatPost.get()).status == "pending"  # the attempt that took over failed
        fake_teams.status = 202
        post(card)  # Teams' late answer to the first attempt: its card is in the channel

    monkeypatch.setattr(teams, "post", slow)
    outbox.send_due()
    ChatPost.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()

    assert outbox.send_due() == 1
    assert len(fake_teams.cards) == 1
