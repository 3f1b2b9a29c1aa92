"""`POST /api/x_bets_pmc_jit/authorization_request_webhook_handler`: EPM's deliveries."""
from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from app import contract
from app.auth.basic import require_roles
from app.errors import BrokerError
from app.intake import service
from app.intake.schemas import DeliveryResultSchema

bp = Blueprint("intake", __name__)
# One instance: a marshmallow schema copies its declared fields each time one is made.
_RESULT = DeliveryResultSchema()


class PayloadTooLarge(BrokerError):
    status = 413


@bp.post(contract.WEBHOOK_PATH)
@require_roles(contract.ROLE_API, allow_session=False)
def webhook():
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    delivery = service.Delivery(None, request.content_type, request.headers, request.remote_addr)
    length = request.content_length
    if length is not None and length > limit:
        _reject_too_large(delivery, limit)
    try:
        delivery.raw_body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        _reject_too_large(delivery, limit)
    incoming = service.receive(delivery)
    return jsonify(result=_RESULT.dump(incoming))


def _reject_too_large(delivery, limit):
    # The body is not kept: storing it is what the limit protects against.
    delivery.raw_body = None
    reason = f"The body is larger than the {limit} byte limit"
    service.record_rejected(delivery, reason)
    raise PayloadTooLarge("Payload too large", reason)
