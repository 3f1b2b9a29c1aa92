"""A strict fake of Slack's Web API on loopback, for slack_sdk's WebClient pointed at it by base URL.

It checks the bot token, refuses a message or view Slack would refuse (its documented Block Kit limits: block
counts, text lengths, unique block and action ids, modal title and button lengths), knows the channel, the
users and their e-mail addresses, updates or deletes only a message it holds, gives trigger ids that last 3
seconds, and records every call."""
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
TRIGGER_SECONDS = 3


class QuietHandler(WSGIRequestHandler):
    """No access log: a request line can carry a webhook's signature, which the tests look for in the logs."""

    def log_request(self, *args):
        pass


class Invalid(Exception):
    """What Slack would answer `invalid_blocks` or `invalid_arguments` for."""


def _text(value, limit, where, plain_only=False):
    if not isinstance(value, dict) or value.get("type") not in ("plain_text", "mrkdwn"):
        raise Invalid(f"{where}: a text object is required")
    if plain_only and value["type"] != "plain_text":
        raise Invalid(f"{where}: must be plain_text")
    text = value.get("text")
    if not isinstance(text, str) or not text:
        raise Invalid(f"{where}: text must be a non-empty string")
    if len(text) > limit:
        raise Invalid(f"{where}: text is {len(text)} characters, more than {limit}")


def _element(element, where, action_ids):
    kind = element.get("type")
    action_id = element.get("action_id")
    if action_id is not None:
        if len(action_id) > 255:
            raise Invalid(f"{where}: action_id longer than 255")
        if action_id in action_ids:
            raise Invalid(f"{where}: action_id {action_id!r} is not unique")
        action_ids.add(action_id)
    if kind == "button":
        _text(element.get("text"), 75, f"{where}.text", plain_only=True)
        if len(element.get("value", "")) > 2000 or len(element.get("url", "")) > 3000:
            raise Invalid(f"{where}: value or url too long")
        if element.get("style") not in (None, "primary", "danger"):
            raise Invalid(f"{where}: unknown style")
    elif kind == "plain_text_input":
        if not 0 < element.get("max_length", 3000) <= 3000:
            raise Invalid(f"{where}: max_length must be 1-3000")
        if "placeholder" in element:
            _text(element["placeholder"], 150, f"{where}.placeholder", plain_only=True)
        if len(element.get("initial_value", "")) > element.get("max_length", 3000):
            raise Invalid(f"{where}: initial_value longer than max_length")
    elif kind == "radio_buttons":
        options = element.get("options") or []
        if not 0 < len(options) <= 10:
            raise Invalid(f"{where}: 1-10 options")
        for index, option in enumerate(options):
            _text(option.get("text"), 75, f"{where}.options[{index}]")
            if not 0 < len(option.get("value", "")) <= 150:
                raise Invalid(f"{where}.options[{index}]: value must be 1-150 characters")
        if "initial_option" in element and element["initial_option"] not in options:
            raise Invalid(f"{where}: initial_option is not one of the options")
    else:
        raise Invalid(f"{where}: element type {kind!r} not expected here")


def validate_blocks(blocks, limit, surface="message"):
    if not isinstance(blocks, list) or len(blocks) > limit:
        raise Invalid(f"a {surface} holds at most {limit} blocks")
    block_ids, action_ids = set(), set()
    for index, block in enumerate(blocks):
        where = f"blocks[{index}]"
        block_id = block.get("block_id")
        if block_id is not None:
            if len(block_id) > 255 or block_id in block_ids:
                raise Invalid(f"{where}: block_id too long or not unique")
            block_ids.add(block_id)
        kind = block.get("type")
        if kind == "header":
            _text(block.get("text"), 150, f"{where}.text", plain_only=True)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                raise Invalid(f"{where}: a section needs text or fields")
            if "text" in block:
                _text(block["text"], 3000, f"{where}.text")
            fields = block.get("fields", [])
            if len(fields) > 10:
                raise Invalid(f"{where}: at most 10 fields")
            for number, item in enumerate(fields):
                _text(item, 2000, f"{where}.fields[{number}]")
        elif kind == "context":
            elements = block.get("elements") or []
            if not 0 < len(elements) <= 10:
                raise Invalid(f"{where}: 1-10 context elements")
            for number, item in enumerate(elements):
                _text(item, 3000, f"{where}.elements[{number}]")
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 0 < len(elements) <= 25:
                raise Invalid(f"{where}: 1-25 elements")
            for number, item in enumerate(elements):
                _element(item, f"{where}.elements[{number}]", action_ids)
        elif kind == "input":
            if surface != "modal":
                raise Invalid(f"{where}: input blocks belong in modals")
            _text(block.get("label"), 2000, f"{where}.label", plain_only=True)
            _element(block.get("element") or {}, f"{where}.element", action_ids)
        else:
            raise Invalid(f"{where}: block type {kind!r} not expected here")


def validate_view(view):
    if view.get("type") != "modal":
        raise Invalid("view.type must be modal")
    _text(view.get("title"), 24, "view.title", plain_only=True)
    for name in ("submit", "close"):
        if name in view:
            _text(view[name], 24, f"view.{name}", plain_only=True)
    if len(view.get("private_metadata", "")) > 3000 or len(view.get("callback_id", "")) > 255:
        raise Invalid("view: private_metadata or callback_id too long")
    has_input = any(block.get("type") == "input" for block in view.get("blocks", []))
    if has_input and "submit" not in view:
        raise Invalid("view: a modal with input blocks needs a submit button")
    validate_blocks(view.get("blocks"), VIEW_BLOCKS, "modal")


@dataclass
class Call:
    method: str
    arguments: dict
    ok: bool
    error: str | None = None


@dataclass
class FakeSlack:
    token: str = "xoxb-test-bot-token"
    channel: str = "C0TICKETS"
    users: dict = field(default_factory=dict)  # Slack user id -> e-mail
    calls: list = field(default_factory=list)
    messages: dict = field(default_factory=dict)  # ts -> {"text", "blocks"}
    triggers: dict = field(default_factory=dict)  # trigger id -> time given
    views: list = field(default_factory=list)
    delay_seconds: float = 0
    retry_after: int | None = None  # set: every call is rate-limited, HTTP 429 with this Retry-After, as Slack does

    def __post_init__(self):
        self._lock = threading.Lock()
        self._server = None

    # --- the test's side ---------------------------------------------------------------------

    def add_user(self, user_id, email):
        self.users[user_id] = email

    def trigger(self):
        trigger_id = f"{uuid.uuid4().int % 10**10}.{uuid.uuid4().hex[:8]}"
        self.triggers[trigger_id] = time.monotonic()
        return trigger_id

    def calls_to(self, method, ok=True):
        with self._lock:
            return [call for call in self.calls if call.method == method and (ok is None or call.ok == ok)]

    def message(self):
        """The one ticket message in the channel, as last posted or updated."""
        assert len(self.messages) == 1, self.messages
        return next(iter(self.messages.values()))

    # --- serving -----------------------------------------------------------------------------

    def __enter__(self):
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/api/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        method = request.path.rsplit("/", 1)[-1]
        arguments = dict(request.args.items())
        if request.mimetype == "application/json":
            arguments.update(json.loads(request.get_data(as_text=True) or "{}"))
        else:
            arguments.update({key: values[0] for key, values in parse_qs(request.get_data(as_text=True)).items()})
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if self.retry_after is not None:
            answer, status, headers = {"ok": False, "error": "ratelimited"}, 429, {"Retry-After": str(self.retry_after)}
        else:
            answer, status, headers = self._answer(method, arguments, request.headers.get("Authorization", "")), 200, {}
        with self._lock:
            self.calls.append(Call(method, arguments, answer["ok"], answer.get("error")))
        return Response(json.dumps(answer), status=status, headers=headers,
                        content_type="application/json")(environ, start_response)

    def _answer(self, method, arguments, authorization):
        if authorization != f"Bearer {self.token}":
            return {"ok": False, "error": "invalid_auth"}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        try:
            return {"ok": True, **handler(arguments)}
        except Invalid as error:
            return {"ok": False, "error": "invalid_blocks", "errors": [str(error)]}
        except LookupError as error:
            return {"ok": False, "error": str(error.args[0])}

    def _message_arguments(self, arguments):
        if arguments.get("channel") != self.channel:
            raise LookupError("channel_not_found")
        if not arguments.get("text") or len(arguments["text"]) > 40000:
            raise Invalid("text is required (the notification's words) and at most 40000 characters")
        validate_blocks(arguments.get("blocks"), MESSAGE_BLOCKS)

    def _chat_postMessage(self, arguments):
        self._message_arguments(arguments)
        ts = f"{time.time():.6f}"
        with self._lock:
            while ts in self.messages:
                ts = f"{float(ts) + 0.000001:.6f}"
            self.messages[ts] = {"text": arguments["text"], "blocks": arguments["blocks"]}
        return {"channel": self.channel, "ts": ts}

    def _chat_update(self, arguments):
        self._message_arguments(arguments)
        if arguments.get("ts") not in self.messages:
            raise LookupError("message_not_found")
        self.messages[arguments["ts"]] = {"text": arguments["text"], "blocks": arguments["blocks"]}
        return {"channel": self.channel, "ts": arguments["ts"]}

    def _chat_delete(self, arguments):
        if arguments.get("channel") != self.channel:
            raise LookupError("channel_not_found")
        with self._lock:
            if self.messages.pop(arguments.get("ts"), None) is None:
                raise LookupError("message_not_found")
        return {"channel": self.channel, "ts": arguments["ts"]}

    def _chat_postEphemeral(self, arguments):
        if arguments.get("channel") != self.channel:
            raise LookupError("channel_not_found")
        if arguments.get("user") not in self.users:
            raise LookupError("user_not_in_channel")
        if not arguments.get("text"):
            raise Invalid("text is required")
        return {"message_ts": f"{time.time():.6f}"}

    def _views_open(self, arguments):
        given = self.triggers.pop(arguments.get("trigger_id"), None)
        if given is None or time.monotonic() - given > TRIGGER_SECONDS:
            raise LookupError("expired_trigger_id")
        view = arguments.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        validate_view(view)
        view = {**view, "id": f"V{uuid.uuid4().hex[:10].upper()}"}
        self.views.append(view)
        return {"view": view}

    def _users_info(self, arguments):
        user_id = arguments.get("user")
        if user_id not in self.users:
            raise LookupError("user_not_found")
        email = self.users[user_id]
        return {"user": {"id": user_id, "profile": {"email": email} if email else {}}}
