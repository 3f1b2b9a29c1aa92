"""Signals a lower layer sends so that a higher one can react without importing back up.

Receivers connect in their package's `init_app`; a signal sent inside a transaction is
received inside it, so what a receiver writes commits or rolls back with the sender's work.
"""
from blinker import Namespace

_signals = Namespace()

# Sender: the new Task, inside the transaction that creates it; `configuration` is passed along.
ticket_created = _signals.signal("ticket-created")
# Sender: the Account class, after an account row was written.
account_changed = _signals.signal("account-changed")
# Sender: an ITSM connection as it was, inside the transaction that renames it; `new_name` is passed.
connection_renamed = _signals.signal("itsm-connection-renamed")
# Sender: an ITSM connection, inside the transaction that deletes it; a receiver keeps it by raising.
connection_deleting = _signals.signal("itsm-connection-deleting")
# Sender: the Decision EPM refused for good, inside the transaction that marks it failed.
decision_delivery_failed = _signals.signal("decision-delivery-failed")
# Sender: the Decision EPM acknowledged when it was sent (app/decisions/delivery.py), inside the transaction that
# marks it delivered: the request is settled by it.
decision_delivered = _signals.signal("decision-delivered")
# Sender: the Task a person moved to another state (the ticket page, the API), inside the transaction that moved it.
ticket_state_changed = _signals.signal("ticket-state-changed")
# Sender: the JIT record whose first final decision from EPM was just recorded on it (final_decision, by, time),
# inside that transaction and under its RequestId's lock: a decision of the broker's still waiting to be sent
# is settled by it, never sent after it.
epm_decision_final = _signals.signal("epm-decision-final")
# Sender: the Task, inside the transaction that changed it. Every change a ticket goes through (a decision, its
# delivery, EPM's final decision or a later update, a state change, expiry) writes a work note, so the note is
# where it is announced: see app/tickets/service.add_work_note.
ticket_changed = _signals.signal("ticket-changed")
