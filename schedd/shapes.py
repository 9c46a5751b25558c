"""The base of every wire shape: reading a request by its shape, encoding an answer.

A shape is a `msgspec.Struct` (`Model`) whose field names are the wire names (a product's
mixed casing spelt as the product spells it; `msgspec.field(name=...)` where Python
cannot), in the order the wire shows them. One declaration gives three things:

- the answer: a route builds the model and `encode` turns it into JSON (fields in
  declaration order; `UNSET` fields left out);
- the request: `read(Model, data)` checks a body against the model (a wrong type or a
  broken constraint is a 400 naming the field) and hands the family a typed object;
- the document: `schedd/api/models.py` collects every model into the OpenAPI
  `components.schemas`, generated from these declarations.

Each family declares its shapes in its own package (`families/*/shapes.py`); the field
types several families share are declared here, once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct

from schedd.errors import ValidationError
from schedd.states import HistoryStrategy, RunState, values
from schedd.values import IDENT_PATTERN

REF = "#/components/schemas/{name}"
"""Where the OpenAPI document keeps a model's schema."""


def extra(**schema: Any) -> Meta:
    """JSON Schema keywords added to a field's generated schema (a description, an enum)."""
    return Meta(extra_json_schema=schema)


# -- field types several families share: each wire format once ---------------------------

RFC3339 = Annotated[str, extra(format="date-time", description="UTC with microseconds; "
                               "0001-01-01T00:00:00Z when it has not happened yet")]
NextExecution = Annotated[str | None, extra(description="RFC 3339 UTC; null for an inactive schedule")]
LocalTime = Annotated[str, Meta(pattern=r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$",
                                description="YYYY-MM-DD HH:MM:SS in the daemon's time zone")] | None
Ident = Annotated[str, Meta(pattern=f"^{IDENT_PATTERN}$")]
RUN_STATES = list(values(RunState))
RunStatus = Annotated[str, extra(enum=RUN_STATES)]
Strategy = Annotated[str, extra(enum=list(values(HistoryStrategy)))]


class Model(Struct, kw_only=True):
    """A wire shape. `VERBATIM` models carry JSON a client stored (a job's `jobServiceInfo`):
    they are encoded by the json module, so a number reads back exactly as it was answered before."""

    VERBATIM: ClassVar[bool] = False
    REASONS: ClassVar[Mapping[str, str]] = {}
    """A request model's wording of a field that fails its declaration, by wire name."""


class Verbatim(Model, kw_only=True):
    VERBATIM: ClassVar[bool] = True


M = TypeVar("M", bound=Model)


def read(model: type[M], data: Mapping[str, Any]) -> M:
    """`data` (a JSON body, or a form's fields) as `model`, every field checked against its
    declaration: its type, its constraints, whether it is required.

    The first field that fails, in declaration order, is a 400 naming it, worded by the
    model's `REASONS` (as the family's envelope words it), else by msgspec. Keys the model
    does not name are ignored.
    """
    try:
        return msgspec.convert(data, model, strict=True)
    except msgspec.ValidationError:
        pass
    for info in msgspec.structs.fields(model):  # msgspec reports in the body's order; the first declared wins
        value = data.get(info.encode_name, UNSET)
        if value is UNSET:
            if info.required:
                raise ValidationError(info.encode_name, model.REASONS.get(info.encode_name, "is required"))
            continue
        try:
            msgspec.convert(value, info.type, strict=True)
        except msgspec.ValidationError as exc:
            reason = model.REASONS.get(info.encode_name) or str(exc).partition(" - at ")[0]
            raise ValidationError(info.encode_name, reason) from None
    raise ValidationError("body", f"does not match {model.__name__}")


def schema_of(kind: Any) -> dict[str, Any]:
    """The JSON Schema of one declared field type (a path or query parameter's: `Ident`)."""
    return msgspec.json.schema(kind)


# -- answers ---------------------------------------------------------------------------------

_ENCODER = msgspec.json.Encoder()


def fields_of(model: Model) -> dict[str, Any]:
    """A model's fields by attribute name (to build a model that extends it)."""
    return msgspec.structs.asdict(model)


def to_builtins(value: Any) -> Any:
    """A model (or anything holding models) as dicts and lists, keys in wire order."""
    return msgspec.to_builtins(value)


def encode(value: Any) -> bytes:
    """The JSON of an answer: compact, UTF-8 as is.

    Byte for byte what `json.dumps(value, separators=(",", ":"), ensure_ascii=False)` writes
    for the same dicts. A model (or a list of models) is encoded by msgspec; a VERBATIM one,
    and plain dicts and lists, by the json module. A lone surrogate stored before the input
    rule existed is escaped, never a 500.
    """
    first = value[0] if isinstance(value, list) and value else value
    if not isinstance(first, Model) or first.VERBATIM:
        return _dumps(msgspec.to_builtins(value))
    try:
        return _ENCODER.encode(value)
    except UnicodeEncodeError:
        return json.dumps(msgspec.to_builtins(value), separators=(",", ":")).encode("ascii")


def _dumps(data: Any) -> bytes:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, separators=(",", ":")).encode("ascii")
