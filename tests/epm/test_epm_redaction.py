"""Secrets masked before anything is logged: dicts, JSON, form bodies and plain text."""
import json

from app.logs.redaction import MASK, redact, truncate


def test_secret_named_keys_are_masked_at_any_depth():
    value = {"client_id": "broker", "client_secret": "s", "nested": [{"refresh_token": "r", "Password": "p"}],
             "Authorization": "Bearer t", "apiSecretKey": "k", "message": "kept"}
    assert redact(value) == {"client_id": "broker", "client_secret": MASK,
                             "nested": [{"refresh_token": MASK, "Password": MASK}],
                             "Authorization": MASK, "apiSecretKey": MASK, "message": "kept"}
    assert value["client_secret"] == "s"  # the original is not touched


def test_json_text_is_masked_and_stays_json():
    text = json.dumps({"access_token": "abc.def", "token_type": "Bearer", "expires_in": 3600})
    assert json.loads(redact(text)) == {"access_token": MASK, "token_type": "Bearer", "expires_in": 3600}


def test_form_encoded_text_is_masked():
    text = "grant_type=client_credentials&client_id=broker&client_secret=p%40ss"
    assert redact(text) == f"grant_type=client_credentials&client_id=broker&client_secret={MASK}"
    assert redact(text.encode()) == redact(text)


def test_truncated_json_and_headers_in_plain_text_are_masked():
    text = '{"access_token": "abc.def", "scope": "urn:management:api", "trunc'
    masked = redact(text)
    assert "abc.def" not in masked and "urn:management:api" in masked
    assert redact("Authorization: Bearer abc.def") == f"Authorization: {MASK} {MASK}"


def test_text_without_secrets_is_unchanged():
    assert redact("Service unavailable, try later") == "Service unavailable, try later"
    assert redact(None) is None and redact(42) == 42


def test_truncate_marks_what_it_cut():
    assert truncate("abcdef", 3) == "abc… [3 more characters]"
    assert truncate("abc", 3) == "abc"
