"""Validation policies on JIT requests: ordered rules, ticket checks, bypass codes, as PAM360 and CyberArk
check access requests, applied after a ticket is created; two-person approval is in app/decisions/."""


def init_app(app):
    """Every new ticket meets the policies, whichever path created it (webhook, replay, reconciliation), and so
    does one whose rules waited while it took no decision, once it takes one again (reopened, its decision refused
    by EPM for good), or ends with none run once the request is settled (its decision delivered, EPM's own); rules
    follow a renamed ITSM connection and keep one they name from deletion."""
    from app import events
    from app.policies import queue, rules

    events.ticket_created.connect(queue.queue_new_ticket)
    events.ticket_state_changed.connect(queue.requeue_changed_ticket)
    events.decision_delivery_failed.connect(queue.requeue_refused_decision)
    events.decision_delivered.connect(queue.end_wait_on_delivered_decision)
    events.epm_decision_final.connect(queue.end_wait_on_epm_decision)
    events.connection_renamed.connect(rules.rename_ticket_source)
    events.connection_deleting.connect(rules.keep_ticket_source)
