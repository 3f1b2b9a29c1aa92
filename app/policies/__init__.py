"""Validation policies on JIT requests: ordered rules, ticket checks, bypass codes, two-person approval.

What PAM360 and CyberArk check on access requests, applied after a ticket is
created: `queue` decides when rules run, `engine` what they do, `validation` how a
referenced ticket is judged (the broker's own or an ITSM's, see app/itsm),
`bypass` the failsafe codes, `approvals` the two-person rule, `rules` how rules are
stored, and `commands` the CLI; the admin page is app/web/policies.py.
"""
