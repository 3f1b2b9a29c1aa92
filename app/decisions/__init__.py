"""Approvers' decisions: the rules a decision must pass, two-person approval, the outbox, delivery to EPM,
and the decision and state endpoints of the write API."""
