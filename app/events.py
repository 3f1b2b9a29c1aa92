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
