"""Ticket records as the Table API writes them: each record's JSON text, straight from the row read.

The text is what `fields.dumps` makes of `fields.written_record` over `records.record_values`, byte
for byte, but planned once per request: the fields in the order the answer sorts them, each field's
key and writer, and the text of each reference, state, approval and other value a page repeats,
written once. A record of a page of thousands then costs a few string joins, where building
(value, display) pairs and dictionaries for the encoder to walk again cost most of the answer."""
from json.encoder import encode_basestring_ascii
from operator import itemgetter

from app.servicenow_api import records
from app.servicenow_api.fields import dumps, reference, written

# Fields whose values repeat across a page: each distinct value is written once per request.
REPEATED = {"sys_class_name", "category", "active"}


def _text(value):
    """A value as JSON text: strings (every value but an unusual one) through the encoder's own function."""
    return encode_basestring_ascii(value) if type(value) is str else dumps(value)


def _as_read(value):
    return value


def _plain(read, convert, mode):
    """The writer of a field whose value is its display value: `convert(read(row))`."""
    if mode == "all":
        def write(row):
            text = _text(convert(read(row)))
            return f'{{"display_value":{text},"value":{text}}}'
        return write
    return lambda row: _text(convert(read(row)))


def _remembered(read, text_of):
    """The writer of a field with few distinct values: `text_of(read(row))`, made once per value."""
    known = {}

    def write(row):
        key = read(row)
        text = known.get(key)
        if text is None:
            text = known[key] = text_of(key)
        return text
    return write


def _field_writers(names, context, answer, position):
    mode, links = answer
    wanted = set(names)

    def pair_text(pair):
        return dumps(written(pair, mode, links, context))

    writers = {}
    for name, (attribute, convert) in records.PLAIN.items():
        if name not in wanted:
            continue
        read = itemgetter(position[attribute])
        writers[name] = (_remembered(read, lambda value, convert=convert: pair_text((convert(value),) * 2))
                         if name in REPEATED else _plain(read, convert, mode))
    if "approval" in wanted:
        writers["approval"] = _remembered(itemgetter(position[records.COMPUTED["approval"]]),
                                          lambda value: pair_text(records.approval_pair(value)))
    if "state" in wanted:
        writers["state"] = _remembered(itemgetter(position["sys_class_name"], position["state"]),
                                       lambda key: pair_text(records.state_pair(*key)))
    for name, (table, column, _walks) in records.REFERENCES.items():
        read = itemgetter(position[column.name])
        if name in wanted:
            writers[name] = _remembered(read, lambda key, table=table: pair_text(reference(table, key or "")
                                                                                 or ("", "")))
        for field in sorted(records.reference_walks(name, "", "").keys() & wanted):
            if field in records.COMPUTED:  # the email, read with the page
                writers[field] = _plain(itemgetter(position[records.COMPUTED[field]]), _as_read, mode)
            else:
                writers[field] = _remembered(read, lambda key, name=name, field=field: pair_text(
                    (records.reference_walks(name, key or "", "")[field],) * 2))
    return writers


def record_writer(names, context, answer):
    """row (records.row_type of `names`) -> the JSON text of its record with the fields in `names`, for
    answer (display mode, whether references carry links)."""
    row_fields = records.row_type(records.computed_fields(names))._fields
    writers = _field_writers(names, context, answer, {field: index for index, field in enumerate(row_fields)})
    order = sorted(writers)
    if not order:
        return lambda _row: "{}"
    keys = [("{" if index == 0 else ",") + encode_basestring_ascii(name) + ":" for index, name in enumerate(order)]
    steps = list(zip(keys, [writers[name] for name in order]))

    def write(row):
        return "".join([key + field(row) for key, field in steps]) + "}"
    return write
