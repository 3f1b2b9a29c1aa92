"""Chat where the help desk already is: the Slack app (a message per ticket, kept up to date, with buttons that
open a decision modal) and Microsoft Teams cards through a Workflows webhook.

Receivers of `ticket_created` and `ticket_changed` only queue a ChatPost row inside the sender's transaction;
the `send_chat` job (and, in a request, a send right after the answer) does the talking."""
