"""The audit trail: an append-only, hash-chained log of who did what, from where, and when.

`service.record` appends an entry; `service.verify` walks the chain. The admin page
(app/web/audit.py), its JSON twin (app/ops/api.py) and the `jitbroker audit` commands
(commands.py) read it.
"""
