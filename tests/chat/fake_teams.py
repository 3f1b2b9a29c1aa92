"""A Teams Workflows webhook on loopback that refuses what Teams would: a message that is not one Adaptive Card
attachment, a card schema version Teams does not render, an element missing a required field, or a message
over Teams' 28 KB. It answers 202 as the Workflows trigger does, and keeps each card it took."""
import json
import threading

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

SUPPORTED_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5")
SIZE_LIMIT = 28 * 1024
REQUIRED = {"TextBlock": ("text",), "FactSet": ("facts",), "Action.OpenUrl": ("title", "url")}


def problems(raw):
    if len(raw) > SIZE_LIMIT:
        return [f"message is {len(raw)} bytes, over {SIZE_LIMIT}"]
    message = json.loads(raw)
    found = []
    attachments = message.get("attachments") or []
    if message.get("type") != "message" or len(attachments) != 1:
        return ["expected a message with one attachment"]
    if attachments[0].get("contentType") != "application/vnd.microsoft.card.adaptive":
        return ["the attachment is not an Adaptive Card"]
    card = attachments[0].get("content") or {}
    if card.get("type") != "AdaptiveCard" or card.get("version") not in SUPPORTED_VERSIONS:
        found.append(f"card type/version {card.get('type')}/{card.get('version')} not rendered by Teams")
    for element in [*card.get("body", []), *card.get("actions", [])]:
        for name in REQUIRED.get(element.get("type"), ()):
            if not element.get(name):
                found.append(f"{element.get('type')} without {name}")
        for fact in element.get("facts", []) if element.get("type") == "FactSet" else []:
            if not isinstance(fact.get("title"), str) or not isinstance(fact.get("value"), str):
                found.append("a fact needs a title and a value, both text")
    if not card.get("body"):
        found.append("a card needs a body")
    return found


class QuietHandler(WSGIRequestHandler):
    """No access log: a request line can carry a webhook's signature, which the tests look for in the logs."""

    def log_request(self, *args):
        pass


class FakeTeams:
    def __init__(self):
        self.cards, self.refused = [], []
        self.status = 202
        self.retry_after = None  # the Retry-After sent with a failing status
        self.answer = "busy"  # the body sent with a failing status

    def __enter__(self):
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=QuietHandler)
        self.url = (f"http://127.0.0.1:{self._server.server_port}/workflows/abc/triggers/manual/paths/invoke"
                    "?api-version=1&sig=secret-signature")
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        raw = request.get_data()
        if request.args.get("sig") != "secret-signature":
            return Response("unauthorized", 401)(environ, start_response)
        found = problems(raw)
        if found:
            self.refused.append(found)
            return Response(json.dumps({"error": found}), 400)(environ, start_response)
        if self.status >= 300:
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            return Response(self.answer, self.status, headers=headers)(environ, start_response)
        self.cards.append(json.loads(raw)["attachments"][0]["content"])
        return Response("", self.status)(environ, start_response)
