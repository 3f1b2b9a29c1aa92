"""`GET /metrics`: Prometheus metrics counted from the database at scrape time.

Several workers and hosts serve one deployment, so no counter is kept in a process's memory; the endpoint
shows counts only and needs no sign-in, so expose it to the Prometheus server alone.

A counter counts rows that, once stored, keep what it counts them by (a delivery's event type, a decision's
final outcome, an EPM call's answer): it goes down only when retention deletes rows. What a row is now (a
delivery waiting for its ticket, then processed) is a gauge: Prometheus reads a counter going down as a reset
and would count the rest again."""
from collections import Counter

from flask import Blueprint, Response, current_app
from peewee import Case, fn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from app import contract
from app.audit import service as audit
from app.audit.models import AuditEntry
from app.logs.models import AppLog, OutboundCall
from app.logs.setup import WEBHOOK_AUTH_LOGGER
from app.models import Decision, IncomingRequest, JIT_MODELS, Task, utcnow

bp = Blueprint("metrics", __name__)

# Upper bounds (seconds) of the EPM call latency histogram's buckets.
EPM_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OUTBOX_STATUSES = (contract.DELIVERY_PENDING, contract.DELIVERY_SENDING)
UNKNOWN = "unknown"


def event_label(name):
    """The contract's spelling of an event type, or `unknown`: a rejected body may name anything."""
    event = contract.find_event_type(name)
    return event.name if event is not None else UNKNOWN


class DatabaseCollector:
    """Counts deliveries, decisions, EPM calls, tickets, EPM's later updates and refused authentications
    from the database."""

    def collect(self):
        yield from self._webhook_deliveries()
        yield from self._decisions()
        yield from self._epm_calls()
        yield self._tickets()
        yield from self._epm_later_updates()
        yield CounterMetricFamily(
            "jitbroker_sign_in_failures", "Refused browser sign-ins, from the audit log",
            value=AuditEntry.select().where(AuditEntry.action == audit.SIGN_IN_FAILED).count())
        yield self._webhook_auth_failures()

    @staticmethod
    def _webhook_deliveries():
        rows = list(IncomingRequest
                    .select(IncomingRequest.event_type, IncomingRequest.status, fn.COUNT(IncomingRequest.id))
                    .group_by(IncomingRequest.event_type, IncomingRequest.status).tuples())
        # A replay or a late created event changes a delivery's status, never the event type its label reads.
        stored = CounterMetricFamily("jitbroker_webhook_deliveries", "Webhook deliveries stored, by event type",
                                     labels=["event_type"])
        yield _summed(stored, (((event_label(event_type),), count) for event_type, _status, count in rows))
        by_status = GaugeMetricFamily("jitbroker_webhook_deliveries_by_status",
                                      "Stored webhook deliveries by event type and current status "
                                      "(received: waiting for its ticket; error: to mend and replay)",
                                      labels=["event_type", "status"])
        yield _summed(by_status, (((event_label(event_type), status), count) for event_type, status, count in rows))

    @staticmethod
    def _decisions():
        by_status = dict(Decision.select(Decision.status, fn.COUNT(Decision.id)).group_by(Decision.status).tuples())
        # Delivered and failed are final: a decision settled either way stays so (a new decision is a new row).
        deliveries = CounterMetricFamily("jitbroker_decision_deliveries",
                                         "Decisions whose delivery to EPM ended, by outcome", labels=["outcome"])
        for outcome in (contract.DELIVERY_DELIVERED, contract.DELIVERY_FAILED):
            deliveries.add_metric([outcome], by_status.get(outcome, 0))
        yield deliveries
        yield GaugeMetricFamily("jitbroker_outbox_depth", "Decisions waiting for or in delivery to EPM",
                                value=sum(by_status.get(status, 0) for status in OUTBOX_STATUSES))
        oldest = Decision.select(fn.MIN(Decision.decided_at)).where(Decision.status.in_(OUTBOX_STATUSES)).scalar()
        yield GaugeMetricFamily("jitbroker_oldest_pending_decision_age_seconds",
                                "Seconds the oldest undelivered decision has waited; 0 when none waits",
                                value=max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0)

    @staticmethod
    def _epm_calls():
        call = OutboundCall
        bucket_columns = [fn.SUM(Case(None, [(call.duration_ms <= bound * 1000, 1)], 0))
                          for bound in EPM_LATENCY_BUCKETS]
        rows = (call.select(call.what, fn.COUNT(call.id), fn.SUM(call.duration_ms), *bucket_columns)
                .group_by(call.what).order_by(call.what).tuples())
        latency = HistogramMetricFamily("jitbroker_epm_call_duration_seconds",
                                        "Time EPM took to answer each call (token and API), by call",
                                        labels=["call"])
        for what, count, total_ms, *cumulative in rows:
            buckets = [(_bound_text(bound), int(in_bucket or 0))
                       for bound, in_bucket in zip(EPM_LATENCY_BUCKETS, cumulative)]
            latency.add_metric([what], buckets + [("+Inf", count)], (total_ms or 0) / 1000)
        yield latency

        calls = CounterMetricFamily("jitbroker_epm_calls", "Calls made to EPM, by call and answer (error: no answer)",
                                    labels=["call", "status"])
        rows = call.select(call.what, call.status, fn.COUNT(call.id)).group_by(call.what, call.status).tuples()
        yield _summed(calls, (((what, status_class(status)), count) for what, status, count in rows))

    @staticmethod
    def _webhook_auth_failures():
        return CounterMetricFamily(
            "jitbroker_webhook_auth_failures",
            "Webhook deliveries refused for their credentials (401 or 403), from the service log",
            value=AppLog.select().where(AppLog.logger == WEBHOOK_AUTH_LOGGER).count())

    @staticmethod
    def _tickets():
        family = GaugeMetricFamily("jitbroker_tickets", "Tickets by ticket type and state",
                                   labels=["ticket_type", "state"])
        rows = (Task.select(Task.sys_class_name, Task.state, fn.COUNT(Task.id))
                .group_by(Task.sys_class_name, Task.state).order_by(Task.sys_class_name, Task.state).tuples())
        for table, state, count in rows:
            ticket_type = contract.TICKET_TYPES.get(table)
            family.add_metric([table, ticket_type.state_label(state) if ticket_type else str(state)], count)
        return family

    @staticmethod
    def _epm_later_updates():
        conflicts = GaugeMetricFamily(
            "jitbroker_epm_decision_conflicts",
            "Tickets holding an EPM update that contradicted the decision EPM acknowledged, by kind",
            labels=["kind"])
        outcomes = GaugeMetricFamily("jitbroker_epm_later_outcomes",
                                     "Tickets whose EPM decision a later update revoked, ended early or changed",
                                     labels=["kind", "outcome"])
        for kind, model in JIT_MODELS.items():
            conflicts.add_metric([kind], model.select().where(model.conflict_decision.is_null(False)).count())
            counted = dict(model.select(model.epm_outcome, fn.COUNT(model.id))
                           .where(model.epm_outcome.is_null(False)).group_by(model.epm_outcome).tuples())
            for outcome in contract.EPM_OUTCOMES:
                outcomes.add_metric([kind, outcome], counted.get(outcome, 0))
        yield conflicts
        yield outcomes


def status_class(status):
    """`2xx`, `4xx`, ... for an HTTP status; `error` when no answer came."""
    return "error" if status is None else f"{status // 100}xx"


def _summed(family, keyed_counts):
    """`family` with one sample per label tuple: the counts of rows that fall under the same labels, summed."""
    totals = Counter()
    for labels, count in keyed_counts:
        totals[labels] += count
    for labels, count in sorted(totals.items()):
        family.add_metric(list(labels), count)
    return family


def _bound_text(bound):
    return repr(float(bound))


def init_app(app):
    """Give `app` its own registry (never the process-global one), holding the database collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    app.extensions["metrics_registry"] = registry
    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics():
    registry = current_app.extensions["metrics_registry"]
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
