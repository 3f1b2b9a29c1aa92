"""The roof: a no-op Flask JSON endpoint served exactly like the broker.

What two sync gunicorn workers on this machine can answer at all; every throughput
target is a ratio against it, measured in the same run.
"""
from flask import Flask, jsonify


def create_app():
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/noop")
    def noop():
        return jsonify(result={"status": "ok"})

    return app
