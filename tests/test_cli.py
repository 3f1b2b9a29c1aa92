"""The jitbroker command line: init, users and configuration."""
import re
from pathlib import Path

import click
import pytest

from app.models import Account, Configuration


def test_init_is_idempotent_and_prints_the_first_admin_password(runner):
    first = runner.invoke(args=["init"])
    assert first.exit_code == 0, first.output
    match = re.search(r"Created admin account 'admin' with password: (\S+)", first.output)
    assert match
    second = runner.invoke(args=["init"])
    assert second.exit_code == 0
    assert "Created admin" not in second.output
    assert Account.select().count() == 1
    assert Configuration.select().where(Configuration.name == "Default").count() == 1


def test_init_prints_the_first_admin_password_last_and_set_apart(runner):
    lines = runner.invoke(args=["init"]).output.rstrip("\n").splitlines()
    password_line = next(index for index, line in enumerate(lines) if "with password:" in line)
    assert lines[password_line - 1].startswith("=" * 40) and lines[password_line - 2] == ""
    assert lines[-1].startswith("=" * 40), "nothing follows the password's block"
    assert all("Applied migration" not in line for line in lines[password_line:])
    assert "with password:" not in runner.invoke(args=["init"]).output


def test_the_printed_password_signs_in_to_choose_a_new_one(runner, client):
    """The first admin's password was printed on a terminal: it signs in, but opens only the change page."""
    from tests.conftest import basic_auth
    from tests.webclient import WebClient

    output = runner.invoke(args=["init"]).output
    password = re.search(r"password: (\S+)", output).group(1)
    assert "choose your own at that first sign-in" in output
    web = WebClient(client)
    assert web.sign_in("admin", password).status_code == 302
    assert web.get("/tickets").headers["Location"].endswith("/account/password")
    assert client.get("/api/x_bets_pmc_jit/tickets", headers=basic_auth("admin", password)).status_code == 403


def test_users_create_prints_a_generated_password(runner):
    result = runner.invoke(args=["users", "create", "epm", "--role", "api"])
    assert result.exit_code == 0
    assert re.search(r"Created api account 'epm' with password: \S{12,}", result.output)
    assert Account.by_username("epm").role == "api"


def test_users_create_reads_a_password_from_stdin(runner):
    from app.auth.accounts import password_matches

    result = runner.invoke(args=["users", "create", "ann", "--role", "user", "--password-stdin"],
                           input="a-long-enough-password\n")
    assert result.exit_code == 0
    assert "a-long-enough-password" not in result.output
    assert password_matches(Account.by_username("ann"), "a-long-enough-password")


def test_users_create_rejects_short_passwords_duplicates_and_bad_roles(runner):
    short = runner.invoke(args=["users", "create", "ann", "--role", "user", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "12 characters" in short.output
    runner.invoke(args=["users", "create", "bob", "--role", "user"])
    again = runner.invoke(args=["users", "create", "bob", "--role", "user"])
    assert again.exit_code != 0 and "already exists" in again.output
    assert runner.invoke(args=["users", "create", "cat", "--role", "root"]).exit_code != 0


def test_users_list_shows_role_and_status(runner):
    runner.invoke(args=["users", "create", "zed", "--role", "admin"])
    assert "zed\tadmin\tactive" in runner.invoke(args=["users", "list"]).output


def test_config_set_then_show_masks_the_secret(runner):
    result = runner.invoke(args=["config", "set", "pmc_host=acme-services.pm.beyondtrustcloud.com",
                                 "client_secret=very-secret-value", "auto_close=true", "ticket_type=Change Request",
                                 "active_states=new, assess"])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(args=["config", "show"]).output
    assert "very-secret-value" not in shown
    assert "client_secret = ********" in shown
    assert "pmc_host = acme-services.pm.beyondtrustcloud.com" in shown
    assert "ticket_type = change_request" in shown
    assert "active_states = New, Assess" in shown
    assert Configuration.default().auto_close is True


def test_config_set_chooses_how_the_token_request_authenticates(runner):
    assert Configuration.default().token_auth_method == "client_secret_post"
    result = runner.invoke(args=["config", "set", "token_auth_method=client_secret_basic",
                                 "token_scope=urn:management:api"])
    assert result.exit_code == 0, result.output
    record = Configuration.default()
    assert (record.token_auth_method, record.token_scope) == ("client_secret_basic", "urn:management:api")
    refused = runner.invoke(args=["config", "set", "token_auth_method=basic"])
    assert refused.exit_code != 0 and "client_secret_post, client_secret_basic" in refused.output


def test_config_set_chooses_what_admin_access_once_sends(runner):
    assert Configuration.default().admin_once_duration == "Once"
    result = runner.invoke(args=["config", "set", "admin_once_duration=0"])
    assert result.exit_code == 0, result.output
    assert Configuration.default().admin_once_duration == "0"
    assert "admin_once_duration = 0" in runner.invoke(args=["config", "show"]).output


def test_config_set_warns_about_a_host_without_services_suffix(runner):
    result = runner.invoke(args=["config", "set", "pmc_host=acme.pm.beyondtrustcloud.com"])
    assert result.exit_code == 0
    assert "-services" in result.output


def test_config_set_rejects_bad_keys_and_values_with_one_line(runner):
    for assignment in ["colour=blue", "ticket_type=problem", "auto_close=maybe", "active_states=Sleeping",
                       "pmc_host=https://", "pmc_host=has space.example.com", "no-equals-sign"]:
        result = runner.invoke(args=["config", "set", assignment])
        assert result.exit_code != 0, assignment
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert Configuration.default().ticket_type == "incident"


# What Python makes of `caf\xe9` typed on a Latin-1 terminal: the byte it cannot decode as a lone surrogate.
LATIN1_CAFE = b"caf\xe9".decode("utf-8", "surrogateescape")
NOT_UTF8 = "is not UTF-8 text (byte 0xE9 at character 4): set the terminal to UTF-8 and enter it again"


def test_config_set_refuses_a_value_that_is_not_utf8_and_stores_nothing(runner):
    from app.audit.models import AuditEntry

    entries = AuditEntry.select().count()
    result = runner.invoke(args=["config", "set", "default_category=Hardware", f"tenant_id={LATIN1_CAFE}"])
    assert result.exit_code == 2, result.output
    assert f"the value of tenant_id {NOT_UTF8}" in result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert (Configuration.default().tenant_id, Configuration.default().default_category) == ("", "")
    assert AuditEntry.select().count() == entries


@pytest.mark.parametrize("args", [
    ["users", "create", LATIN1_CAFE, "--role", "user"],
    ["users", "set", "ann", "--groups", LATIN1_CAFE],
    ["policy", "add", LATIN1_CAFE, "approve"],
    ["policy", "settings", f"exempt_users={LATIN1_CAFE}"],
    ["itsm", "add", LATIN1_CAFE, "jira"],
    ["slack", "link", "ann", LATIN1_CAFE],
])
def test_every_command_refuses_text_that_is_not_utf8_as_a_usage_error(runner, args):
    runner.invoke(args=["users", "create", "ann", "--role", "user"])
    result = runner.invoke(args=args)
    assert result.exit_code == 2, result.output
    assert NOT_UTF8 in result.output and "Nothing was changed." in result.output
    assert isinstance(result.exception, SystemExit)
    assert Account.select().count() == 1


def test_a_password_on_stdin_that_is_not_utf8_is_refused_as_a_usage_error(runner):
    result = runner.invoke(args=["users", "create", "bea", "--role", "user", "--password-stdin"],
                           input=b"caf\xe9-and-long-enough\n")
    assert result.exit_code == 2, result.output
    assert "The password on standard input is not UTF-8 text (byte 0xE9 at byte 4)" in result.output
    assert Account.by_username("bea") is None


def test_users_set_password_replaces_the_password(runner):
    from app.auth.accounts import password_matches

    runner.invoke(args=["users", "create", "ann", "--role", "user"])
    result = runner.invoke(args=["users", "set-password", "ann"])
    new_password = re.search(r"New password for 'ann': (\S+)", result.output).group(1)
    assert password_matches(Account.by_username("ann"), new_password)
    assert runner.invoke(args=["users", "set-password", "nobody"]).exit_code != 0


README = Path(__file__).resolve().parent.parent / "README.md"
_SPAN = re.compile(r"`(?:\.venv/bin/)?jitbroker ([^`]+)`")


def _readme_commands():
    """Each `jitbroker …` span of the README, as written (with or without .venv/bin/), and each span of the
    first paragraph of its "Command line" section that starts with a lower-case word (a command named
    without `jitbroker`)."""
    text = README.read_text()
    spans = [" ".join(match.group(1).split()) for match in _SPAN.finditer(text)]
    section = text.split("## Command line", 1)[1].strip().split("\n\n", 1)[0]
    spans += [" ".join(span.split()) for span in re.findall(r"`([a-z][a-z-]*(?: [^`]*)?)`", section)
              if span.split()[0] not in ("jitbroker", "flask")]
    return spans


def _resolve(group, words, span):
    """Walk `words` down the command groups; every alternative (a|b) must be a command, every --option
    one of the command it follows."""
    command = group
    for word in words:
        if isinstance(command, click.Group):
            names = word.split("|")
            if not all(name in command.commands for name in names):
                raise AssertionError(f"README: `jitbroker {span}`: no command {word!r} under {command.name!r}")
            if len(names) > 1:
                return
            command = command.commands[names[0]]
            continue
        option = re.match(r"\[?(--[a-z][a-z-]*)", word)
        if option:
            known = {name for param in command.params for name in getattr(param, "opts", [])}
            assert option.group(1) in known, f"README: `jitbroker {span}`: {command.name} has no {option.group(1)}"


def test_every_jitbroker_command_in_the_readme_exists(app):
    spans = _readme_commands()
    assert len(spans) > 20
    for span in spans:
        words = [word for word in span.split() if word not in ("…", "...")]
        _resolve(app.cli, words, span)


def test_the_readme_says_how_to_run_jitbroker_on_a_fresh_machine():
    text = README.read_text()
    assert ". .venv/bin/activate" in text and ".venv/bin/jitbroker users set-password admin" in text
    assert "http://127.0.0.1:8200" in text, "the fake EPM's address"


def test_a_person_given_a_password_on_the_command_line_must_change_it(runner):
    runner.invoke(args=["users", "create", "ann", "--role", "user", "--password-stdin"],
                  input="a-long-enough-password\n")
    runner.invoke(args=["users", "create", "epm", "--role", "api"])
    assert Account.by_username("ann").must_change_password and not Account.by_username("epm").must_change_password
    Account.change(Account.by_username("ann").id, must_change_password=False)

    result = runner.invoke(args=["users", "set-password", "ann"])

    assert result.exit_code == 0 and "must choose a new password at the next sign-in" in result.output
    assert Account.by_username("ann").must_change_password
