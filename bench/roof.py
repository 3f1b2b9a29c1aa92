"""The roof: a no-op Flask JSON endpoint served exactly like the broker.

What gunicorn, as gunicorn.conf.py runs the broker, can answer on this machine at all; every throughput
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
