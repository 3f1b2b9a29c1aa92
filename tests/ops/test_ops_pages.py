"""The log pages and their JSON twins page by entry (keyset): following Older from the first page
shows every entry once, newest first; Newer goes back; the API's Link header does the same."""
import html
import re

from app.logs.models import AppLog
from app.models import IncomingRequest
from bench import logs

ROWS = 600  # 120 deliveries, 240 log records: a few pages of each


def newest_first(model):
    return [row.sys_id for row in model.select(model.sys_id).order_by(model.id.desc())]


def link(page, rel):
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', page)
    return html.unescape(found.group(1)) if found else None


def shown_sys_ids(page):
    return re.findall(r'href="/admin/incoming/([0-9a-f]{32})"', page)


def test_older_links_show_every_delivery_once_newest_first_and_newer_goes_back(app, as_admin):
    logs.generate_logs(ROWS)
    seen, pages, path = [], [], "/admin/incoming"
    while path:
        page = as_admin.request("GET", path).get_data(as_text=True)
        pages.append((path, page))
        seen += shown_sys_ids(page)
        path = link(page, "next")
    assert seen == newest_first(IncomingRequest)
    assert len(pages) == 3  # 50, 50, 20
    assert link(pages[0][1], "prev") is None
    back = as_admin.request("GET", link(pages[1][1], "prev")).get_data(as_text=True)
    assert shown_sys_ids(back) == shown_sys_ids(pages[0][1])


def test_page_links_keep_the_filters(app, as_admin):
    logs.generate_logs(ROWS)
    page = as_admin.request("GET", "/admin/incoming", query_string={"status": "processed"}).get_data(as_text=True)
    assert "status=processed" in link(page, "next")
    following = as_admin.request("GET", link(page, "next")).get_data(as_text=True)
    processed = [row.sys_id for row in IncomingRequest.select().where(IncomingRequest.status == "processed")
                 .order_by(IncomingRequest.id.desc())]
    assert shown_sys_ids(page) + shown_sys_ids(following) == processed[:100]


def test_the_api_link_header_walks_the_whole_log_newest_first(app, client, admin_auth):
    logs.generate_logs(ROWS)
    seen, path, answers = [], "/api/x_bets_pmc_jit/ops/app_log?limit=100", 0
    while path:
        answer = client.get(path, headers=admin_auth)
        assert answer.status_code == 200
        seen += [entry["sys_id"] for entry in answer.json["result"]]
        answers += 1
        found = re.fullmatch(r'<([^>]+)>; rel="next"', answer.headers.get("Link", ""))
        path = found.group(1) if found else None
    assert seen == newest_first(AppLog)
    assert answers == 3  # 100, 100 and 40: a page with nothing below it has no Link


def test_offset_still_pages_the_api(app, client, admin_auth):
    logs.generate_logs(ROWS)
    answer = client.get("/api/x_bets_pmc_jit/ops/app_log", query_string={"limit": 10, "offset": 30},
                        headers=admin_auth)
    assert [entry["sys_id"] for entry in answer.json["result"]] == newest_first(AppLog)[30:40]


def test_a_page_start_that_is_no_sys_id_is_refused_by_name(app, client, admin_auth):
    answer = client.get("/api/x_bets_pmc_jit/ops/incoming_requests", query_string={"before": "1 OR 1=1"},
                        headers=admin_auth)
    assert answer.status_code == 400
    assert "before" in answer.json["fields"]
