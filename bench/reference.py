"""The reference: the cheapest way a Flask and peewee service can keep a delivery.

A Flask endpoint at the webhook's path that stores each request's body with one peewee
INSERT into a table of its own (no secondary index) on a connection each worker keeps
open: no authentication, no parsing, no request log. It runs under the same gunicorn
settings as the roof and the broker and is loaded with the intake phase's deliveries,
so its ratio to the roof shows what storing a delivery at all costs on this machine,
with each durability setting, apart from what the broker adds.

REFERENCE_DATABASE_URL names the store (`sqlite:///path` or `postgresql://...`);
REFERENCE_SYNCHRONOUS sets SQLite's `synchronous` pragma (FULL, as the broker ships, or
NORMAL). `prepare` creates the table before the workers start.
"""
import os

import peewee
from flask import Flask, jsonify, request
from playhouse.db_url import connect

from app import contract

database = peewee.DatabaseProxy()


class Delivery(peewee.Model):
    body = peewee.BlobField()

    class Meta:
        database = database
        table_name = "reference_delivery"


def open_database(url, synchronous="FULL"):
    if url.startswith("sqlite"):
        return connect(url, pragmas={"journal_mode": "wal", "synchronous": synchronous, "busy_timeout": 10000})
    return connect(url)


def prepare(url):
    database.initialize(open_database(url))
    with database.connection_context():
        database.create_tables([Delivery])


def create_app():
    database.initialize(open_database(os.environ["REFERENCE_DATABASE_URL"],
                                      os.environ.get("REFERENCE_SYNCHRONOUS", "FULL")))
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post(contract.WEBHOOK_PATH)
    def store():
        # Kept open from the first request of each worker on (the master never connects).
        database.connect(reuse_if_open=True)
        Delivery.create(body=request.get_data())
        return jsonify(result={"status": "received"})

    return app
