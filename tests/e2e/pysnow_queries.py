"""Run by tests/e2e/test_e2e_servicenow_clients.py with the pysnow virtual environment's Python (pysnow pins an
old requests-oauthlib, so it cannot share the broker's environment): pysnow's query builder against the broker.

argv: base URL host:port, CA file, user, password. Prints one JSON object: query name -> what pysnow read."""
import json
import sys
from datetime import datetime

import pysnow
import requests


def main(host, ca_file, user, password):
    session = requests.Session()
    session.auth = (user, password)
    session.verify = ca_file
    client = pysnow.Client(host=host, session=session)
    incidents = client.resource(api_path="/table/incident")

    def numbers(query, **options):
        return [record["number"] for record in incidents.get(query=query, fields=["number"], **options).all()]

    q = pysnow.QueryBuilder
    found = {
        "contains": numbers(q().field("short_description").contains("VPN").AND().field("number").order_ascending()),
        "starts_with_or": numbers(q().field("short_description").starts_with("printer").OR()
                                  .field("short_description").ends_with("APP").AND().field("number").order_ascending()),
        "greater_than": numbers(q().field("opened_at").greater_than(datetime(2026, 1, 20, 8, 0, 0))
                                .AND().field("number").order_ascending()),
        "between": numbers(q().field("opened_at").between(datetime(2026, 1, 3, 8, 0, 0), datetime(2026, 1, 5, 8, 0, 0))
                           .AND().field("number").order_ascending()),
        "equals_list_nq": numbers(q().field("number").equals(["INC0010002", "INC0010004"]).NQ()
                                  .field("number").equals("INC0010024").AND().field("number").order_ascending()),
    }
    # pysnow pages with sysparm_offset (it does not follow Link): five records a request until a short page.
    paged, offset = [], 0
    while True:
        page = numbers(q().field("number").order_descending(), limit=5, offset=offset)
        paged += page
        offset += 5
        if len(page) < 5:
            break
    found["ordered_desc_paged"] = paged
    walked = incidents.get(query=q().field("number").equals("INC0010002"),
                           fields=["number", "opened_by", "opened_by.user_name"]).one()
    incidents.parameters.display_value = True
    shown = incidents.get(query=q().field("number").equals("INC0010002"), fields=["state", "opened_by"]).one()
    found["walked"] = walked
    found["shown"] = shown
    print(json.dumps(found))


if __name__ == "__main__":
    main(*sys.argv[1:])
