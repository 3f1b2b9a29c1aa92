"""Approvers' decisions: the rules a decision must pass, the outbox, delivery to EPM."""
