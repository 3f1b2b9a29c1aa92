"""Who may see a browser page: a signed-in account (app/auth/sessions.py) holding the page's role.

Anonymous visitors are sent to the sign-in page; a signed-in account without the
page's role gets 403.
"""
from functools import wraps

from flask import g
from flask_login import current_user

from app.auth.sessions import login_manager
from app.errors import Forbidden


def require_page_roles(*roles):
    """Let a page run only for a signed-in account holding one of `roles`.

    Anonymous requests are redirected to sign-in and come back afterwards.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            account = g.account = current_user._get_current_object()
            if account.role not in roles:
                raise Forbidden(f"The {account.role!r} role may not open this page")
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        return wrapper

    return decorate
