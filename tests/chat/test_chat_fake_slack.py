"""The fake Slack refuses what Slack documents it refuses, so a message or view it takes is one Slack takes."""
import pytest

from tests.chat.fake_slack import Invalid, validate_blocks, validate_view


def _section(text="x"):
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(action_id, text="Go"):
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}}


@pytest.mark.parametrize("blocks", [
    [_section()] * 51,
    [_section("x" * 3001)],
    [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
    [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
    [{"type": "actions", "elements": [_button("same"), _button("same")]}],
    [{"type": "actions", "elements": [_button("a")]}, {"type": "actions", "elements": [_button("a")]}],
    [{"type": "actions", "elements": [_button("a", "b" * 76)]}],
    [{"type": "actions", "block_id": "x", "elements": [_button("a")]},
     {"type": "actions", "block_id": "x", "elements": [_button("b")]}],
])
def test_a_message_slack_would_refuse_is_refused(blocks):
    with pytest.raises(Invalid):
        validate_blocks(blocks, 50)


@pytest.mark.parametrize("change", [
    {"title": {"type": "plain_text", "text": "t" * 25}},
    {"submit": {"type": "plain_text", "text": "s" * 25}},
    {"private_metadata": "m" * 3001},
    {"submit": None},
])
def test_a_view_slack_would_refuse_is_refused(change):
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Approve"},
            "submit": {"type": "plain_text", "text": "Approve"},
            "blocks": [{"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": "Reason"},
                        "element": {"type": "plain_text_input", "action_id": "reason"}}]}
    validate_view(view)
    view.update(change)
    if view.get("submit") is None:
        del view["submit"]
    with pytest.raises(Invalid):
        validate_view(view)
