"""The service's own records: its log (JSON on stdout, WARNING+ kept in the app-log table off
the request thread) and every call to EPM. Below every feature, so any of them can log."""
