"""Who is elevated now: the Admin Access sessions running at this moment, for approvers and admins.

A session runs while EPM's final decision is Approved and its start time <= now < its end time. A
revocation turns the decision to Denied and an early end moves the end time earlier (contract/epm.md
5.3), so either takes the session off this page at once.
"""
from typing import NamedTuple

from flask import Blueprint, render_template, url_for
from peewee import fn

from app import contract
from app.auth.access import require_page_roles
from app.models import AdminTicket, Task, utcnow
from app.web.formatting import duration_text

bp = Blueprint("web_elevated", __name__)

approvers = require_page_roles(*contract.APPROVER_ROLES)


class ElevatedSession(NamedTuple):
    """One running Admin Access session as the page lists it."""

    ticket: str
    ticket_url: str
    user: str
    machine: str
    approver: str
    started_at: object
    ends_at: object
    time_left: str


def running_admin_sessions(now):
    """The Admin Access requests whose approved session runs at `now`, ending soonest first."""
    return (AdminTicket.select(AdminTicket, Task).join(Task)
            .where(fn.LOWER(AdminTicket.final_decision) == contract.DECISION_APPROVED.lower(),
                   AdminTicket.final_start_time <= now, AdminTicket.final_end_time > now)
            .order_by(AdminTicket.final_end_time, Task.number))


def _row(jit, now):
    task = jit.task
    return ElevatedSession(
        ticket=task.number, ticket_url=url_for("web_tickets.ticket", number=task.number),
        user=jit.user_name or task.requester or jit.user_id or "unknown user",
        machine=task.host or jit.computer_id or "unknown machine",
        approver=jit.final_decision_by or "not given by EPM",
        started_at=jit.final_start_time, ends_at=jit.final_end_time,
        time_left=duration_text((jit.final_end_time - now).total_seconds()))


@bp.get("/elevated")
@approvers
def elevated_now():
    now = utcnow()
    return render_template("elevated/list.html", now=now,
                           rows=[_row(jit, now) for jit in running_admin_sessions(now)])
