"""Secrets masked before anything is logged: dicts, JSON, form bodies and plain text."""
import json
import signal
from contextlib import contextmanager

import pytest

from app.logs.redaction import MASK, redact, truncate


@contextmanager
def cpu_seconds_at_most(seconds):
    """Fail the test once the block has used `seconds` of this process's CPU time.

    CPU time rather than wall-clock time, so a busy machine does not make the bound flaky;
    the signal interrupts a regular expression still running.
    """
    def too_slow(*_):
        pytest.fail(f"took more than {seconds} s of CPU time")

    previous = signal.signal(signal.SIGPROF, too_slow)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


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


def test_json_text_nested_deeper_than_can_be_walked_is_masked_as_text():
    deep = {"access_token": "abc.def"}
    for _ in range(600):  # parses, but walking it key by key runs out of stack
        deep = {"inner": deep}
    text = json.dumps({"client_secret": "s3cr3t-value", "data": [deep]})

    masked = redact(text)

    assert "abc.def" not in masked and "s3cr3t-value" not in masked
    assert masked.count(MASK) == 2 and masked.count('"inner"') == 600


def test_form_encoded_text_is_masked():
    text = "grant_type=client_credentials&client_id=broker&client_secret=p%40ss"
    assert redact(text) == f"grant_type=client_credentials&client_id=broker&client_secret={MASK}"
    assert redact(text.encode()) == redact(text)


def test_truncated_json_and_headers_in_plain_text_are_masked():
    text = '{"access_token": "abc.def", "scope": "urn:management:api", "trunc'
    masked = redact(text)
    assert "abc.def" not in masked and "urn:management:api" in masked
    assert redact("Authorization: Bearer abc.def") == f"Authorization: {MASK} {MASK}"


def test_a_cut_json_secret_value_is_masked_past_its_spaces():
    text = '{"client_secret": "correct horse battery staple", "scope": "urn:management:api", "trunc'
    assert redact(text) == f'{{"client_secret": "{MASK}", "scope": "urn:management:api", "trunc'
    assert redact('{"password": "correct horse battery') == f'{{"password": "{MASK}'
    assert redact('{"password": "say \\"hi\\" twice", "trunc') == f'{{"password": "{MASK}", "trunc'


def test_cookie_headers_are_masked_whole():
    assert redact("Cookie: session=abc123; theme=dark") == f"Cookie: {MASK}"
    assert redact("Set-Cookie: sid=abc123; Path=/; HttpOnly\nnext line") == f"Set-Cookie: {MASK}\nnext line"
    assert redact("{'Set-Cookie': 'sid=abc123; Path=/', 'Accept': 'json'}") == (
        f"{{'Set-Cookie': '{MASK}', 'Accept': 'json'}}")
    assert redact({"Cookie": "session=abc123", "Accept": "json"}) == {"Cookie": MASK, "Accept": "json"}


def test_a_urls_password_is_masked_and_the_rest_kept():
    assert redact("could not reach https://broker:p4ss-w0rd@epm.example/api (timed out)") == (
        f"could not reach https://broker:{MASK}@epm.example/api (timed out)")
    assert json.loads(redact('{"url": "postgresql://jit:p4ss@db/jit"}')) == {"url": f"postgresql://jit:{MASK}@db/jit"}
    assert redact("callback=https://broker:p4ss@epm.example&client_id=broker") == (
        f"callback=https%3A%2F%2Fbroker%3A{MASK}%40epm.example&client_id=broker")
    assert redact("GET https://epm.example:8443/api failed") == "GET https://epm.example:8443/api failed"


def test_a_long_unbroken_run_is_masked_in_time_growing_with_its_length():
    """Near-misses of a secret's shape in runs of 198,000 characters: scanning each run from each
    of its characters takes tens of minutes of CPU time here, a linear scan well under a second."""
    run = "x" * 60_000 + "7" * 60_000 + "client_secret" * 6_000
    text = f"{run} {run}: {run}-value https://user{run}@host Cookie{run}"
    with cpu_seconds_at_most(10):
        masked = redact(text)
    assert masked == f"{run} {run}: {MASK} https://user{run}@host Cookie{run}"


def test_text_without_secrets_is_unchanged():
    assert redact("Service unavailable, try later") == "Service unavailable, try later"
    assert redact(None) is None and redact(42) == 42


def test_truncate_marks_what_it_cut():
    assert truncate("abcdef", 3) == "abc… [3 more characters]"
    assert truncate("abc", 3) == "abc"
