"""Validation policies on JIT requests: ordered rules, ticket checks, bypass codes, as PAM360 and CyberArk
check access requests, applied after a ticket is created; two-person approval is in app/decisions/."""
