"""Two-factor sign-in's rules (app/auth/two_factor.py): which codes count, and that none counts twice."""
import hashlib
import time

import pyotp
import pytest

from app.auth import steps, two_factor
from app.auth.models import RecoveryCode
from app.errors import BadRequest
from app.models import Account


def _enrolled(account):
    secret = two_factor.pending_secret(account)
    codes = two_factor.enable(account, pyotp.TOTP(secret).now())
    return Account.get_by_id(account.id), pyotp.TOTP(secret), codes


def test_enrolment_needs_a_right_code_from_the_new_secret(approver):
    secret = two_factor.pending_secret(approver)
    assert two_factor.pending_secret(Account.get_by_id(approver.id)) == secret, "the same secret until enrolled"

    with pytest.raises(BadRequest, match="not right"):
        two_factor.enable(approver, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")

    assert not two_factor.is_enabled(Account.get_by_id(approver.id))


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
