"""The incoming requests page and API: every delivery with its outcome, filters, and the body as received."""
from datetime import timedelta

from app.models import IncomingRequest, utcnow
from tests import factories

LIST = "/api/x_bets_pmc_jit/ops/incoming_requests"


def test_every_delivery_is_listed_with_its_outcome(app, deliver, client, admin_auth):
    request_id = "b7c1d2e3-0000-4000-8000-00000000000a"
    number = deliver(factories.admin_request(request_id)).json["result"]["ticket"]
    deliver(factories.admin_request(request_id))
    deliver({"EventType": "Nope", "RequestId": "r-1"})

    listed = client.get(LIST, headers=admin_auth).json["result"]

    assert [(row["status"], row["event_type"], row["ticket"]) for row in listed] == [
        ("error", "Nope", None), ("duplicate", "JIT_ADMIN_TICKET_CREATED", number),
        ("processed", "JIT_ADMIN_TICKET_CREATED", number)]
    assert "Unknown event type 'Nope'" in listed[0]["error"]
    assert all(row["received_at"] <= row["processed_at"] for row in listed)


def test_filters_by_status_event_type_request_id_and_date(app, deliver, client, admin_auth):
    kept = factories.application_request()
    deliver(kept)
    deliver(factories.admin_request())
    deliver({"EventType": "Nope", "RequestId": "r-2"})
    today = utcnow().date()

    def listed(query):
        return [(row["event_type"], row["request_id"]) for row in
                client.get(f"{LIST}?{query}", headers=admin_auth).json["result"]]

    assert listed("status=error") == [("Nope", "r-2")]
    assert listed("event_type=URM_Native_Ticket_Created") == [("URM_Native_Ticket_Created", kept["RequestId"])]
    assert listed(f"request_id={kept['RequestId']}") == [("URM_Native_Ticket_Created", kept["RequestId"])]
    assert len(listed(f"date={today.isoformat()}")) == 3
    assert listed(f"date={(today - timedelta(days=1)).isoformat()}") == []
    assert client.get(f"{LIST}?status=lost", headers=admin_auth).status_code == 400
    assert client.get(f"{LIST}?date=yesterday", headers=admin_auth).status_code == 400
    assert listed("date=9999-12-31") == listed("date=0001-01-01") == [], "the calendar's ends: no day after or before"


def test_one_delivery_carries_its_body(app, deliver, client, admin_auth):
    body = factories.application_request()
    deliver(body)
    incoming = IncomingRequest.get()

    document = client.get(f"{LIST}/{incoming.sys_id}", headers=admin_auth).json["result"]

    assert document["request_id"] == body["RequestId"]
    assert '"EventType": "URM_Native_Ticket_Created"' in document["body"].replace('":"', '": "')
    assert client.get(f"{LIST}/{'f' * 32}", headers=admin_auth).status_code == 404


def test_the_page_shows_the_body_pretty_printed_and_escaped(app, deliver, as_admin):
    body = factories.application_request(productName="<script>alert('x')</script>")
    deliver(body)
    incoming = IncomingRequest.get()

    page = as_admin.get(f"/admin/incoming/{incoming.sys_id}").get_data(as_text=True)

    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert '\n  &#34;EventType&#34;: &#34;URM_Native_Ticket_Created&#34;,' in page  # indented, one key a line
    assert body["RequestId"] in page


def test_the_list_page_filters_and_links_to_each_delivery(app, deliver, as_admin):
    deliver({"EventType": "Nope", "RequestId": "r-3"})
    deliver(factories.application_request())
    error = IncomingRequest.get(IncomingRequest.status == "error")

    page = as_admin.get("/admin/incoming?status=error").get_data(as_text=True)

    assert f'href="/admin/incoming/{error.sys_id}"' in page
    assert page.count('href="/admin/incoming/') == 1
    assert "Unknown event type" in page
