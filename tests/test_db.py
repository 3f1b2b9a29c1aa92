"""app/db.py's request lifecycle: a request takes a pooled connection with its first query."""
from app import create_app
from tests.live import free_port


def test_a_request_that_needs_no_query_takes_no_connection_and_is_served_while_the_database_is_down():
    # Nothing listens on the port: every connection attempt is refused at once.
    app = create_app({"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
                      "secret_key": "test-secret-key", "TESTING": True})
    client = app.test_client()

    assert client.get("/openapi.json").status_code == 200
    assert client.get("/healthz").status_code == 503  # the one that asks the database still says so
