"""Who may see a browser page: a signed-in account (app/auth/sessions.py) holding the page's role.

Anonymous visitors are sent to the sign-in page; a signed-in account without the
page's role gets 403. An account that owes a step (app/auth/steps.py: an admin-set
password to change, a second factor to enrol) is sent to the page for it from every other page.
"""
from functools import wraps

from flask import g, redirect, url_for
from flask_login import current_user

from app.auth import steps
from app.auth.sessions import login_manager, signed_in_through_idp
from app.errors import Forbidden

# The page where each outstanding step is taken.
STEP_PAGES = {steps.CHANGE_PASSWORD: "web_account.password",
              steps.ENROL_SECOND_FACTOR: "web_two_factor.two_factor_page"}


def require_page_roles(*roles, before_outstanding_steps=False):
    """Let a page run only for a signed-in account holding one of `roles`.

    Anonymous requests are redirected to sign-in and come back afterwards. Unless the page is
    one that must open `before_outstanding_steps`, an account owing a step goes to its page.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            account = g.account = current_user._get_current_object()
            if account.role not in roles:
                raise Forbidden(f"The {account.role!r} role may not open this page")
            step = None if before_outstanding_steps else steps.outstanding_step(
                account, assured_by_idp=signed_in_through_idp())
            if step is not None:
                return redirect(url_for(STEP_PAGES[step]))
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        return wrapper

    return decorate
