"""The list API's ticket summaries are built without a marshmallow schema per row; they must
still say exactly what TicketSchema says."""
from app.models import Task
from app.tickets.documents import TicketSchema, ticket_summary, ticket_url
from bench import generate


def test_perf_ticket_summary_is_what_the_schema_dumps(app):
    generate.generate(50)
    Task.update(closed_at=None).where(Task.id.in_([task.id for task in Task.select()][::2])).execute()
    tasks = list(Task.select())
    assert [ticket_summary(task) for task in tasks] == TicketSchema(many=True).dump(tasks)


def test_a_ticket_link_made_outside_a_request_is_the_path_alone_without_a_public_url(app, make_ticket):
    task = make_ticket()  # reconciliation, a CLI replay or an upgrade make links with no request to ask

    assert app.extensions["settings"].public_url == ""
    assert ticket_url(task) == f"/tickets/{task.number}"
