"""The durable write reference: the least a service that must not lose a delivery can do.

A Flask endpoint at the webhook's path that checks HTTP Basic against a constant, parses
the JSON body, and stores the raw body with one peewee INSERT into a table of its own, at
the broker's durability: SQLite in WAL mode with `synchronous` FULL, on a connection opened
for each request; PostgreSQL with `synchronous_commit` on, on a pooled connection. It runs
under the Procfile's gunicorn settings (gunicorn.conf.py) and is loaded with the intake
phase's deliveries, so the intake's ratio to it is what the broker adds to a durable write.

REFERENCE_DATABASE_URL names the store (`sqlite:///path` or `postgresql://...`).
`prepare` creates the table before the workers start.
"""
import base64
import hmac
import os

import peewee
from flask import Flask, abort, jsonify, request
from playhouse.db_url import parse as parse_database_url
from playhouse.pool import PooledPostgresqlDatabase

from app import contract
from bench.broker import API_USER, PASSWORD

database = peewee.DatabaseProxy()
CREDENTIALS = base64.b64encode(f"{API_USER}:{PASSWORD}".encode()).decode()


class Delivery(peewee.Model):
    body = peewee.BlobField()

    class Meta:
        database = database
        table_name = "reference_delivery"


def open_database(url):
    options = parse_database_url(url)
    name = options.pop("database")
    if url.startswith("sqlite"):
        # Not pooled: each request connects, sets its pragmas and closes.
        return peewee.SqliteDatabase(name, pragmas={"journal_mode": "wal", "synchronous": "FULL",
                                                    "busy_timeout": 10000})
    return PooledPostgresqlDatabase(name, max_connections=8, stale_timeout=300, **options)


def prepare(url):
    database.initialize(open_database(url))
    with database.connection_context():
        database.create_tables([Delivery])


def create_app():
    database.initialize(open_database(os.environ["REFERENCE_DATABASE_URL"]))
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post(contract.WEBHOOK_PATH)
    def store():
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic" or not hmac.compare_digest(token.encode(), CREDENTIALS.encode()):
            abort(401)
        if not isinstance(request.get_json(silent=True), dict):
            abort(400)
        with database.connection_context():  # SQLite: a new connection; PostgreSQL: one from the pool
            Delivery.create(body=request.get_data())
        return jsonify(result={"status": "received"})

    return app
