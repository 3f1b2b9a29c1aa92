"""The admin users page: create with a one-time password, roles, resets, deactivation."""
import re

from app.models import Account
from tests import factories
from tests.webclient import CONFIRMED


def text_of(response):
    return response.get_data(as_text=True)


def shown_password(response):
    return re.search(r'<code class="password">([^<]+)</code>', text_of(response)).group(1)


def test_users_page_lists_accounts(as_admin, approver):
    page = text_of(as_admin.get("/admin/users"))
    assert "root" in page and "jchen" in page
    assert 'value="user" selected' in page


def test_create_user_shows_the_password_once(as_admin, web, app):
    response = as_admin.post("/admin/users", {"username": "mnovak", "role": "user"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    password = shown_password(response)
    assert Account.by_username("mnovak").role == "user"
    assert password not in text_of(as_admin.get("/admin/users"))
    assert password not in str(as_admin.session())

    as_admin.post("/sign-out")
    assert web.sign_in("mnovak", password).status_code == 302


def test_duplicate_user_name_is_refused(as_admin, approver):
    response = as_admin.post("/admin/users", {"username": "jchen", "role": "user"})
    assert response.status_code == 409
    assert "already exists" in text_of(response)


def test_unknown_role_is_refused(as_admin):
    assert as_admin.post("/admin/users", {"username": "x1", "role": "root"}).status_code == 400


def test_admin_sets_a_role(as_admin, approver):
    response = as_admin.post(f"/admin/users/{approver.id}/role", {"role": "admin"})
    assert response.status_code == 302
    assert Account.get_by_id(approver.id).role == "admin"


def test_admin_cannot_change_their_own_role(as_admin, admin):
    response = as_admin.post(f"/admin/users/{admin.id}/role", {"role": "user"})
    assert response.status_code == 400
    assert Account.get_by_id(admin.id).role == "admin"


def test_reset_password_shows_a_new_password(as_admin, approver, web):
    response = as_admin.post(f"/admin/users/{approver.id}/password", CONFIRMED)
    assert response.status_code == 200
    password = shown_password(response)
    assert password != factories.PASSWORD
    as_admin.post("/sign-out")
    assert web.sign_in("jchen", factories.PASSWORD).status_code == 401
    assert web.sign_in("jchen", password).status_code == 302


def test_deactivate_and_reactivate(as_admin, approver):
    as_admin.post(f"/admin/users/{approver.id}/active", {"active": "false", **CONFIRMED})
    assert Account.get_by_id(approver.id).active is False
    assert "Reactivate" in text_of(as_admin.get("/admin/users"))
    as_admin.post(f"/admin/users/{approver.id}/active", {"active": "true"})
    assert Account.get_by_id(approver.id).active is True


def test_admin_cannot_deactivate_themselves(as_admin, admin):
    response = as_admin.post(f"/admin/users/{admin.id}/active", {"active": "false", **CONFIRMED})
    assert response.status_code == 400
    assert Account.get_by_id(admin.id).active is True


def test_unknown_account_is_404(as_admin):
    assert as_admin.post("/admin/users/99999/password", CONFIRMED).status_code == 404


def test_users_page_is_for_admins_only(as_approver, approver):
    assert as_approver.get("/admin/users").status_code == 403
    assert as_approver.post("/admin/users", {"username": "sneaky", "role": "admin"}).status_code == 403
    assert Account.by_username("sneaky") is None


def test_admin_resetting_their_own_password_stays_signed_in(as_admin, admin):
    response = as_admin.post(f"/admin/users/{admin.id}/password", CONFIRMED)
    assert response.status_code == 200
    assert as_admin.get("/admin/users").status_code == 200


def test_own_row_offers_no_role_change_or_deactivation(as_admin, admin):
    page = text_of(as_admin.get("/admin/users"))
    assert f"/admin/users/{admin.id}/role" not in page
    assert f"/admin/users/{admin.id}/active" not in page
