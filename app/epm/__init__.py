"""EPM's management API: the client (token cache, decision and read calls), payloads, and a fake EPM."""
