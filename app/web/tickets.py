"""Ticket pages: the list, one ticket, the decision form, state changes, notes, delivery retries and
Check with EPM."""
import hashlib
import logging
from typing import NamedTuple
from urllib.parse import quote

import peewee
from flask import Blueprint, flash, g, make_response, redirect, render_template, request, url_for

from app import contract
from app.auth.access import require_page_roles
from app.auth.step_up import approval_needs_step_up
from app.decisions import service as decisions
from app.decisions.rules import clean_decision
from app.epm.errors import EpmError
from app.errors import BadRequest
from app.jobs.reconcile import check_with_epm
from app.models import Configuration, utcnow
from app.tickets.rows import ListedTicket, active_states, decision_statuses, row_page
from app.tickets.service import find_task
from app.web import decision_form, labels, oidc
from app.web import ticket_list as listing
from app.web.formatting import age, duration_words, timestamps
from app.web.ticket_page import live_parts, live_signature, ticket_view

bp = Blueprint("web_tickets", __name__)
log = logging.getLogger(__name__)

approvers = require_page_roles(*contract.APPROVER_ROLES)


def _awaiting_count():
    """The navigation's count of tickets awaiting a decision; None (no count shown) when it cannot be read."""
    try:
        return listing.awaiting_count()
    except peewee.PeeweeException:
        log.warning("could not count the tickets awaiting a decision", exc_info=True)
        return None


@bp.app_context_processor
def _navigation_context():
    # A function, called only by pages that show the navigation to a signed-in account.
    return {"awaiting_count": _awaiting_count}


@bp.get("/")
@approvers
def home():
    return redirect(url_for("web_tickets.ticket_list"))


# The filter's fixed choices, (value, label) pairs, made once rather than on every page.
_STATE_CHOICES = tuple((label, label) for label in contract.ALL_STATE_LABELS)
_KIND_CHOICES = tuple(contract.KIND_LABELS.items())
_TICKET_TYPE_CHOICES = tuple((t.table, t.label) for t in contract.TICKET_TYPES.values())


def _list_page(args):
    """What the list shows for `args` (its filters and cursor), every row already text."""
    filters = listing.TicketFilters.from_args(args)
    configuration = Configuration.default()
    page = row_page(listing.filtered_query(filters, configuration), after=args.get("after"),
                    before=args.get("before"), size=listing.PAGE_SIZE, row_type=ListedTicket)
    link = url_for("web_tickets.ticket", number="-").removesuffix("-")
    now = utcnow()
    active = active_states(configuration.active_state_labels)
    statuses = decision_statuses(page.rows, lambda row: (row.sys_class_name, row.state) in active)
    filter_args = filters.as_args()
    rows = [_list_row(row, link, now, statuses[row.id]) for row in page.rows]
    cursor = {name: args[name] for name in ("after", "before") if args.get(name)}
    return {
        "filters": filters,
        "filter_args": filter_args,
        "page_args": {**filter_args, **cursor},
        "all_tickets_args": {**filter_args, "decision": listing.DECISION_ANY},
        "page": page,
        "rows": rows,
        # Every cell is text, so equal tuples render equal rows: the ETag needs no rendering.
        "rows_etag": _etag(repr((rows, page.newer, page.older, filter_args))),
    }


@bp.get("/tickets")
@approvers
def ticket_list():
    view = _list_page(request.args)
    return render_template(
        "tickets/list.html",
        **view,
        decision_choices=listing.DECISION_CHOICES,
        state_choices=_STATE_CHOICES,
        kind_choices=_KIND_CHOICES,
        ticket_type_choices=_TICKET_TYPE_CHOICES,
        group_choices=[(group, group) for group in listing.group_choices()],
    )


@bp.get("/tickets/rows")
@approvers
def ticket_rows():
    """The list's rows for the same filters and cursor, polled by the open list: 304 while they read the same."""
    view = _list_page(request.args)
    etag = view["rows_etag"]
    if request.if_none_match.contains(etag):
        return _live_answer("", etag, 304)
    return _live_answer(render_template("tickets/_rows.html", **view), etag)


def _etag(signature):
    """A short strong ETag for what a live part shows, given as one string."""
    return hashlib.blake2b(signature.encode(), digest_size=12).hexdigest()


def _live_answer(body, etag, status=200):
    """A live part's answer: never cached by the browser (static/live.js sends If-None-Match itself)."""
    response = make_response(body, status)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-store"
    return response


class ListRow(NamedTuple):
    """One line of the ticket list, every cell already text: a page has 50 of them, and a
    url_for or a template filter per cell cost more than the page's query. The template
    unpacks it in this order."""

    link: str
    number: str
    kind: str
    requester: str
    host: str
    application: str
    duration: str
    state: str
    decision_status: str
    opened_at: str  # for <time datetime>
    opened_at_text: str
    age: str


def _list_row(row, link, now, decision_status):
    number = row.number
    opened_at_text, opened_at = timestamps(row.opened_at)
    # Broker-made numbers are letters and digits, which quote() would return unchanged.
    path = number if number.isascii() and number.isalnum() else quote(number)
    return ListRow(link + path, number, contract.KIND_LABELS[row.kind], row.requester or "", row.host or "",
                   row.subject, duration_words(row.requested_duration), row.state_label, decision_status, opened_at,
                   opened_at_text, age(row.opened_at, now))


@bp.get("/tickets/<number>")
@approvers
def ticket(number):
    view = ticket_view(find_task(number), g.account)
    return render_template("tickets/detail.html", **view, live_etag=_etag(live_signature(view)))


@bp.get("/tickets/<number>/live")
@approvers
def ticket_live(number):
    """The ticket page's live parts (state, decision, ticket rows, notes, history), polled by the open page:
    304 while they read the same, else each part to swap by its id; never a form a person types in."""
    parts = live_parts(find_task(number), g.account)
    etag = _etag(live_signature(parts))
    if request.if_none_match.contains(etag):
        return _live_answer("", etag, 304)
    return _live_answer(render_template("tickets/_live.html", **parts), etag)


@bp.get("/tickets/<number>/<any(approve, deny):slug>/live")
@approvers
def decide_live(number, slug):
    """Polled by an open decision form: 204 while this account may still decide the ticket (the form and
    the text typed in it stay); once it cannot (EPM or another approver decided meanwhile, or the request
    expired), why not and the decision to show in place of the form, brought up to date (a decision being
    sent, then delivered) until it reads the same (304)."""
    parts = live_parts(find_task(number), g.account)
    if parts["actions"]:
        etag = _etag("open")
        return _live_answer("", etag, 304 if request.if_none_match.contains(etag) else 204)
    etag = _etag(live_signature(parts))
    if request.if_none_match.contains(etag):
        return _live_answer("", etag, 304)
    return _live_answer(render_template("tickets/_decided_meanwhile.html", **parts), etag)


@bp.route("/tickets/<number>/<any(approve, deny):slug>", methods=["GET", "POST"])
@approvers
def decide(number, slug):
    task = find_task(number)
    decision = labels.DECISIONS_BY_SLUG[slug]
    if request.method == "GET":
        values = decision_form.form_values(requested=task.requested_duration)  # Application Access has none
        return render_template("tickets/decision.html", **decision_form.form_view(task, decision, values))
    values = decision_form.form_values(request.form)
    if decision == contract.DECISION_APPROVED and approval_needs_step_up(g.account, task) and not oidc.fresh_enough():
        try:  # a form the server would refuse is shown again now, not after the trip to the provider
            clean_decision(decision, values["reason"], values["duration_unit"], values["duration_value"])
        except BadRequest as error:
            view = decision_form.form_view(task, decision, values, errors=error.extra.get("fields", {}),
                                           message=error.message)
            return render_template("tickets/decision.html", **view), error.status
        return oidc.begin_step_up(task, slug, values)
    return decision_form.submit(task, decision, values, g.account, authenticated_at=oidc.authenticated_at())


@bp.post("/tickets/<number>/state")
@approvers
def change_state(number):
    task = find_task(number)
    updated = decisions.change_state(task, g.account, request.form.get("state", ""))
    flash(f"State is now {updated.state_label}.", "ok")
    return redirect(url_for("web_tickets.ticket", number=task.number))


@bp.post("/tickets/<number>/notes")
@approvers
def add_note(number):
    task = find_task(number)
    decisions.add_work_note(task, g.account, request.form.get("work_note", ""))
    flash("Work note added.", "ok")
    return redirect(url_for("web_tickets.ticket", number=task.number, _anchor="notes"))


@bp.post("/tickets/<number>/retry")
@require_page_roles(contract.ROLE_ADMIN)
def retry_delivery(number):
    task = find_task(number)
    latest = decisions.latest_decision(task)
    if latest is None:
        raise BadRequest(f"{task.number} has no decision to send")
    result = decisions.retry_now(latest)
    flash(f"Delivery: {labels.DELIVERY_LABELS.get(result.status, result.status)}.",
          "error" if result.status != contract.DELIVERY_DELIVERED else "ok")
    return redirect(url_for("web_tickets.ticket", number=task.number))


@bp.post("/tickets/<number>/check")
@approvers
def check_epm(number):
    """Read the ticket's request from EPM and record what EPM says; an EPM failure changes nothing."""
    task = find_task(number)
    try:
        result = check_with_epm(task, g.account)
    except (EpmError, ValueError) as error:
        flash(f"Could not check with EPM: {getattr(error, 'message', str(error))}", "error")
    else:
        finalized = f" Recorded EPM's final decision: {result.finalized}." if result.finalized else ""
        flash(f"{result.note}{finalized}", "error" if result.problem else "ok")
    return redirect(url_for("web_tickets.ticket", number=task.number))
