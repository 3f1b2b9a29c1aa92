"""Validation policies on JIT requests: ordered rules, ticket checks, bypass codes, two-person approval,
as PAM360 and CyberArk check access requests, applied after a ticket is created."""
