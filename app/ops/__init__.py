"""Operations: what ops see. Every webhook delivery (with replay), every call to EPM, the
service's own log, each ticket's processing history, a dashboard of the last 30 days and
Prometheus metrics. The log and the call records themselves are kept by app/logs/.
"""
