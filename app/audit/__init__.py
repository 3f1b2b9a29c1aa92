"""The audit trail: an append-only, signed hash chain of who did what, from where, and when.

`service.record` appends an entry, signed under the key keys.py loads; `service.verify` walks the
chain by the rules in chain.py. The admin page (app/web/audit.py), its JSON twin (app/ops/api.py)
and the `jitbroker audit` commands (commands.py) read it.
"""
