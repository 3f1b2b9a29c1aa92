"""Operations: every webhook delivery (with replay), every call to EPM, the service's log, each ticket's
history, a 30-day dashboard and Prometheus metrics; app/logs/ keeps the records."""
