"""Tickets: numbering, creation from EPM requests, EPM's finalized decisions, states, reads."""
