"""External ITSMs the policies validate ticket references against; `CONNECTOR_TYPES` is the one registry of kinds."""
from app.itsm.jira import JiraConnector
from app.itsm.remedyforce import RemedyforceConnector
from app.itsm.servicedesk_plus import (
    ServiceDeskPlusCloudConnector, ServiceDeskPlusConnector, ServiceDeskPlusMspConnector,
)
from app.itsm.servicenow import ServiceNowConnector

CONNECTOR_TYPES = {
    connector.kind: connector
    for connector in (ServiceNowConnector, JiraConnector, ServiceDeskPlusConnector, ServiceDeskPlusMspConnector,
                      ServiceDeskPlusCloudConnector, RemedyforceConnector)
}


def connector_for(connection):
    """The connector for a stored ItsmConnection (ValueError for an unknown kind)."""
    try:
        return CONNECTOR_TYPES[connection.kind](connection)
    except KeyError:
        raise ValueError(f"unknown ITSM kind {connection.kind!r}") from None
