"""What the admin forms (configuration, policy rules, ITSM connections) share: each field as the page
shows it, and the submitted form as the raw values the services check."""


def field_views(fields, stored, submitted=None, errors=None, choices=None, checkboxes=(), textareas=()):
    """One entry per field: label, widget, the value to show (a submitted one over the stored one; never a
    secret: `is_set` says whether one is stored), choices, help and error."""
    errors, choices = errors or {}, choices or {}
    views = []
    for field in fields:
        value = (submitted or {}).get(field.name, stored.get(field.name, ""))
        if field.name in checkboxes and isinstance(value, str):
            value = value == "true"
        widget = ("secret" if field.secret else "checkbox" if field.name in checkboxes else
                  "select" if field.name in choices else "textarea" if field.name in textareas else "text")
        views.append({"name": field.name, "label": field.label, "widget": widget, "help": field.help,
                      "value": "" if field.secret else value,
                      "is_set": bool(stored.get(field.name)) if field.secret else None,
                      "choices": choices.get(field.name, []), "error": errors.get(field.name)})
    return views


def submitted_values(fields, form, checkboxes=()):
    """The raw values to save: checkboxes as true/false, a secret only when one was typed (a blank secret
    field keeps the stored one), everything else as typed."""
    raw = {}
    for field in fields:
        if field.name in checkboxes:
            raw[field.name] = "true" if form.get(field.name) else "false"
        elif not field.secret or form.get(field.name):
            raw[field.name] = form.get(field.name, "")
    return raw
