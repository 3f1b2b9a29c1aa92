"""The JSON list's cursor pages: deep pages by index seek, offered in a Link header."""
import re

from bench import generate

API = "/api/x_bets_pmc_jit/tickets"


def next_link(response):
    match = re.fullmatch(r'<([^>]+)>; rel="next"', response.headers.get("Link", ""))
    return match.group(1) if match else None


def test_following_next_links_walks_every_ticket_once_newest_first(app, client, approver_auth):
    generate.generate(23)
    numbers, url = [], f"{API}?limit=10"
    while url:
        response = client.get(url, headers=approver_auth)
        assert response.status_code == 200
        numbers += [ticket["number"] for ticket in response.json["result"]]
        url = next_link(response)
    everything = [ticket["number"] for ticket in client.get(f"{API}?limit=100", headers=approver_auth).json["result"]]
    assert numbers == everything
    assert len(numbers) == 23 and numbers == sorted(numbers, reverse=True)


def test_next_link_keeps_the_filters(app, client, approver_auth):
    generate.generate(5)
    response = client.get(f"{API}?limit=2&state=New&offset=1", headers=approver_auth)
    link = next_link(response)
    assert "state=New" in link and "cursor=" in link and "offset" not in link


def test_a_short_page_has_no_next_link(app, client, approver_auth):
    generate.generate(3)
    assert next_link(client.get(f"{API}?limit=10", headers=approver_auth)) is None


def test_a_made_up_cursor_is_400(app, client, approver_auth):
    response = client.get(f"{API}?cursor=yesterday", headers=approver_auth)
    assert response.status_code == 400
    assert "cursor" in response.json["error"]["detail"]
