"""Accounts, password checks, HTTP Basic auth with a verification cache, and role rules."""
