"""The audit trail: an append-only, hash-chained log of who did what, from where, and when.

`service.record` appends an entry; `service.verify` walks the chain. The admin page,
the JSON API (views.py) and the `jitbroker audit` commands (commands.py) read it.
"""
