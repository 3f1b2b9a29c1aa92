"""The webhook events the fake EPM sends, shaped like real deliveries (contract/epm.md §1): all strings,
.NET's seven fractional digits, unfilled placeholders left in as real tenants do."""
from datetime import datetime, timezone

from app import contract

DEFAULT_TENANT_ID = "0d3c2b1a-5f4e-4d3c-9b2a-1f0e9d8c7b6a"

APPLICATION_REQUEST_INFO = {
    "applicationType": "exe", "action": "Elevate", "workstyle": "Standard Users",
    "reason": "Need to update the VPN client for the Lisbon office", "user": "CORP\\mrivera",
    "hostName": "LT-LIS-0142", "trustedOwnership": "True", "productDescription": "VPN Client Installer",
    "driveType": "Fixed", "btZoneIdentifierExists": "False", "productCode": "", "upgradeCode": "", "clsId": "",
    "comDisplayName": "", "token": "Admin", "tokenAssignmentIsShell": "False", "uacTriggered": "True",
    "downloadSourceUrl": "", "userLanguage": "en-US", "sha1Hash": "3f786850e387550fdab836ed7e6dc881de23001b",
    "sha256Hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "filePathObjectId": "C:\\Users\\mrivera\\Downloads\\vpnclient-5.2.1.exe", "cmdArgs": "/quiet /norestart",
    "publisher": "Example Networks Inc.", "productName": "Example VPN Client", "productVersion": "5.2.1",
    "fileVersion": "5.2.1.0", "applicationGroup": "Installers - Approval Required",
    "message": "Application requires approval", "messageId": "a1b2c3d4-0000-4000-8000-00000000beef",
    "hostType": "Windows", "osName": "Windows 11 Enterprise", "osVersion": "10.0.22631",
    "ComputerGroup": "%%ComputerGroup%%", "GroupId": "7e5d4c3b-2a19-4807-b6f5-e4d3c2b1a098",
    "requestVersion": "2", "hostedFilePath": "", "parentProcess": "explorer.exe", "storeAppName": "",
    "serviceName": "", "serviceAction": "", "authRequestUri": "", "bundleInfoDescription": "",
    "reputationScoreDateTime": "", "reputationScore": "", "reputationIntegrationType": "",
}

ADMIN_REQUEST_FIELDS = {
    "ComputerId": "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d", "GroupId": "7e5d4c3b-2a19-4807-b6f5-e4d3c2b1a098",
    "Reason": "Install printer driver for the 3rd floor", "UserId": "S-1-5-21-3623811015-3361044348-30300820-1013",
    "UserName": "CORP\\akowalski", "DurationRequested": "1800",
}


def utcnow():
    return datetime.now(timezone.utc)


def dotnet_timestamp(moment):
    """ISO 8601 in UTC with seven fractional digits and a Z, as EPM (a .NET service) writes them."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def iso_seconds(moment):
    """ISO 8601 in UTC to the second, as EPM's update events carry DecisionTime, StartTime and EndTime."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def application_created_event(request_id, ticket_number, *, tenant_id=DEFAULT_TENANT_ID, now=None, **request_info):
    """A URM_Native_Ticket_Created event; keyword arguments replace requestInfo values."""
    unknown = set(request_info) - set(APPLICATION_REQUEST_INFO)
    if unknown:
        raise ValueError(f"Not requestInfo keys: {', '.join(sorted(unknown))}")
    return {
        "EventType": contract.URM_TICKET_CREATED.name, "RequestId": request_id, "TenantId": tenant_id,
        "Timestamp": dotnet_timestamp(now or utcnow()), "TicketNumber": str(ticket_number),
        "requestInfo": {**APPLICATION_REQUEST_INFO, **{key: str(value) for key, value in request_info.items()}},
    }


def admin_created_event(request_id, ticket_number, *, tenant_id=DEFAULT_TENANT_ID, now=None, **fields):
    """A JIT_ADMIN_TICKET_CREATED event (flat); keyword arguments replace field values (UserName=...)."""
    unknown = set(fields) - set(ADMIN_REQUEST_FIELDS)
    if unknown:
        raise ValueError(f"Not admin request fields: {', '.join(sorted(unknown))}")
    return {
        "EventType": contract.ADMIN_TICKET_CREATED.name, "RequestId": request_id, "TenantId": tenant_id,
        "Timestamp": dotnet_timestamp(now or utcnow()), "TicketNumber": str(ticket_number),
        **ADMIN_REQUEST_FIELDS, **{key: str(value) for key, value in fields.items()},
    }


def application_update_event(created, *, decision, decided_by, decided_at, duration, now=None):
    """The URM_NATIVE_DECISION_UPDATE EPM sends once a decision on the `created` request is final."""
    return {
        "EventType": contract.URM_DECISION_UPDATE.name, "RequestId": created["RequestId"],
        "TenantId": created["TenantId"], "TicketNumber": created["TicketNumber"],
        "Timestamp": dotnet_timestamp(now or utcnow()),
        "requestInfo": {"Decision": decision, "DecisionTime": iso_seconds(decided_at),
                        "DecisionPerformedByUser": decided_by or "", "Duration": duration or ""},
    }


def admin_update_event(created, *, decision, decided_by, decided_at, duration, start_time, end_time, now=None):
    """The flat JIT_ADMIN_TICKET_UPDATED EPM sends once a decision is final, and again (5.3, unconfirmed) when an
    approved session is revoked (Decision Denied) or ended early (an earlier EndTime); absent times are ""."""
    return {
        "EventType": contract.ADMIN_TICKET_UPDATED.name, "RequestId": created["RequestId"],
        "TicketNumber": created["TicketNumber"], "TenantId": created["TenantId"],
        "StartTime": iso_seconds(start_time), "EndTime": iso_seconds(end_time), "Decision": decision,
        "DecisionTime": iso_seconds(decided_at), "DecisionPerformedByUser": decided_by or "",
        "Duration": duration or "", "DurationRequested": created.get("DurationRequested", ""),
        "Timestamp": dotnet_timestamp(now or utcnow()),
    }
