"""Two-factor sign-in's rules (app/auth/two_factor.py): which codes count, and that none counts twice; and the
enrolment page (app/web/two_factor.py): who may turn it on."""
import hashlib
import re
import time

import pyotp
import pytest

from app.auth import steps, throttle, two_factor
from app.auth.models import RecoveryCode
from app.errors import BadRequest, Unauthorized
from app.models import Account
from tests import factories

_SECRET = re.compile(r'<code class="secret">([A-Z2-7]+)</code>')


def _enrolled(account):
    secret = two_factor.pending_secret(account)
    codes = two_factor.enable(account, factories.PASSWORD, pyotp.TOTP(secret).now())
    return Account.get_by_id(account.id), pyotp.TOTP(secret), codes


def test_enrolment_needs_a_right_code_from_the_new_secret(approver):
    secret = two_factor.pending_secret(approver)
    assert two_factor.pending_secret(Account.get_by_id(approver.id)) == secret, "the same secret until enrolled"

    with pytest.raises(BadRequest, match="not right"):
        two_factor.enable(approver, factories.PASSWORD,
                          "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")

    assert not two_factor.is_enabled(Account.get_by_id(approver.id))


def test_enrolment_needs_the_current_password_and_leaves_the_code_unused_without_it(approver):
    totp = pyotp.TOTP(two_factor.pending_secret(approver))
    code = totp.now()

    with pytest.raises(Unauthorized, match="current password"):
        two_factor.enable(approver, "not-the-password", code)

    assert not two_factor.is_enabled(Account.get_by_id(approver.id))
    assert two_factor.enable(Account.get_by_id(approver.id), factories.PASSWORD, code)


def test_a_session_left_open_cannot_bind_someone_elses_authenticator(as_approver, approver):
    page = as_approver.get("/account/two-factor").get_data(as_text=True)
    secret = _SECRET.search(page).group(1)
    enrolled = as_approver.post("/account/two-factor", {"code": pyotp.TOTP(secret).now()})
    assert enrolled.status_code in (400, 401)
    assert not two_factor.is_enabled(Account.get_by_id(approver.id))

    wrong = as_approver.post("/account/two-factor", {"code": pyotp.TOTP(secret).now(),
                                                     "current_password": "not-the-password"})
    assert wrong.status_code == 400
    assert "The current password is not right" in wrong.get_data(as_text=True)
    assert _SECRET.search(wrong.get_data(as_text=True)).group(1) == secret, "the page again, the same key"
    assert not two_factor.is_enabled(Account.get_by_id(approver.id))


def test_a_wrong_current_password_at_enrolment_counts_as_a_failed_sign_in(as_approver, approver):
    secret = _SECRET.search(as_approver.get("/account/two-factor").get_data(as_text=True)).group(1)
    for _ in range(throttle.ACCOUNT_LIMIT):
        assert as_approver.post("/account/two-factor", {"code": pyotp.TOTP(secret).now(),
                                                        "current_password": "a-guess"}).status_code == 400
    locked = as_approver.post("/account/two-factor", {"code": pyotp.TOTP(secret).now(),
                                                      "current_password": factories.PASSWORD})
    assert locked.status_code == 429
    assert not two_factor.is_enabled(Account.get_by_id(approver.id))


def test_enrolling_with_the_current_password_turns_it_on(as_approver, approver):
    secret = _SECRET.search(as_approver.get("/account/two-factor").get_data(as_text=True)).group(1)
    enrolled = as_approver.post("/account/two-factor", {"code": pyotp.TOTP(secret).now(),
                                                        "current_password": factories.PASSWORD})
    assert enrolled.status_code == 200
    assert "Your recovery codes" in enrolled.get_data(as_text=True)
    assert two_factor.is_enabled(Account.get_by_id(approver.id))


def test_a_code_from_the_neighbouring_steps_counts_once(approver):
    account, totp, _codes = _enrolled(approver)
    now = totp.timecode(time.time())
    ahead, behind = totp.generate_otp(now + 1), totp.generate_otp(now - 1)

    assert two_factor.verify(account, ahead) == "totp"
    assert two_factor.verify(account, ahead) is None, "a replay"
    assert two_factor.verify(account, behind) is None, "an older step than one already used"
    assert two_factor.verify(account, totp.generate_otp(now + 3)) is None, "too far from now"


def test_recovery_codes_are_stored_as_digests_and_each_counts_once(approver):
    account, _totp, codes = _enrolled(approver)
    stored = {row.code_digest for row in RecoveryCode.select()}

    assert len(codes) == len(set(codes)) == two_factor.RECOVERY_CODES
    assert not stored & set(codes)
    assert two_factor.verify(account, f" {codes[3].upper()} ") == "recovery"
    assert two_factor.verify(account, codes[3]) is None
    assert two_factor.recovery_codes_left(account) == two_factor.RECOVERY_CODES - 1


def test_a_copy_of_the_recovery_code_table_cannot_be_searched_without_the_secret_key(approver):
    """Plain SHA-256 of a ~49-bit code can be brute-forced from a database copy; the stored digest is keyed."""
    _account, _totp, codes = _enrolled(approver)
    stored = {row.code_digest for row in RecoveryCode.select()}
    assert not stored & {hashlib.sha256(code.replace("-", "").encode()).hexdigest() for code in codes}


def test_a_recovery_code_stored_unkeyed_by_an_earlier_version_still_counts_once(approver):
    account, _totp, _codes = _enrolled(approver)
    RecoveryCode.create(account=account.id, code_digest=hashlib.sha256(b"abcdefghjk").hexdigest())
    assert two_factor.verify(account, "abcde-fghjk") == "recovery"
    assert two_factor.verify(account, "abcde-fghjk") is None


def test_turning_it_off_forgets_the_secret_and_the_codes(approver):
    account, totp, codes = _enrolled(approver)

    two_factor.turn_off(account)

    account = Account.get_by_id(approver.id)
    assert not two_factor.is_enabled(account) and account.totp_secret == ""
    assert RecoveryCode.select().count() == 0
    assert two_factor.verify(account, codes[0]) is None


@pytest.mark.parametrize("app_settings", [{"require_mfa_for_admins": True}])
def test_the_setting_asks_a_second_factor_of_admins_only_and_an_idp_sign_in_skips_it(app, admin, approver):
    assert steps.outstanding_step(admin) == steps.ENROL_SECOND_FACTOR
    assert steps.outstanding_step(admin, assured_by_idp=True) is None
    assert steps.outstanding_step(approver) is None
    _enrolled(admin)
    assert steps.outstanding_step(Account.get_by_id(admin.id)) is None


def test_an_admin_set_password_comes_first_and_machines_owe_nothing(approver, api_account):
    Account.change(approver.id, must_change_password=True)
    Account.change(api_account.id, must_change_password=True)

    assert steps.outstanding_step(Account.get_by_id(approver.id), assured_by_idp=True) == steps.CHANGE_PASSWORD
    assert steps.basic_refusal(Account.get_by_id(api_account.id)) is None


def test_enrolling_a_second_factor_ends_sessions_opened_with_the_password_alone(app, client, approver):
    from tests.webclient import WebClient
    elsewhere = WebClient(app.test_client())
    assert elsewhere.sign_in(approver.username).status_code == 302
    here = WebClient(client)
    assert here.sign_in(approver.username).status_code == 302
    here.get("/account/two-factor")
    secret = Account.get_by_id(approver.id).totp_secret
    enrolled = here.post("/account/two-factor", {"code": pyotp.TOTP(secret).now(),
                                                 "current_password": factories.PASSWORD})
    assert enrolled.status_code == 200
    assert two_factor.is_enabled(Account.get_by_id(approver.id))
    assert elsewhere.get("/tickets").status_code == 302, "a session opened with the password alone goes on"
    page = enrolled.get_data(as_text=True)
    assert "Your recovery codes" in page and "Your other sessions have ended" in page
    assert here.get("/tickets").status_code == 200, "this one goes on"
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert here.request("POST", "/sign-out", data={"csrf_token": token}).status_code == 302, \
        "the page's forms carry this session's token"
