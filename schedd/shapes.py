"""The base of every wire shape: reading a request by its shape, encoding an answer.

A shape is a `msgspec.Struct` (`Model`) whose field names are the wire names (a product's
mixed casing spelt as the product spells it; `msgspec.field(name=...)` where Python
cannot), in the order the wire shows them. One declaration gives three things:

- the answer: a route builds the model and `encode` turns it into JSON (fields in
  declaration order; `UNSET` fields left out);
- the request: `check(Model, data)` checks a body (a JSON body, or a form's fields) against
  the model, field by field in its check order, and hands the family a typed form and the
  product's reason for each field that fails; `read` raises the first as a 400 naming the
  field, `faults` answers them all;
- the document: `schedd/api/models.py` collects every model into the OpenAPI
  `components.schemas`, generated from these declarations.

Each family declares its shapes in its own package (`families/*/shapes.py`); the field
types several families share are declared here, once.
"""

from __future__ import annotations

import functools
import json
import re
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin

import msgspec
from msgspec import UNSET, Meta, Struct

from schedd.errors import ValidationError
from schedd.states import RunState, values
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


class Model(Struct, kw_only=True):
    """A wire shape. `VERBATIM` models carry JSON a client stored (a job's `jobServiceInfo`):
    they are encoded by the json module, so a number reads back exactly as it was answered before."""

    VERBATIM: ClassVar[bool] = False
    REASONS: ClassVar[Mapping[str, Reason]] = {}
    """A request model's wording of a field that fails its declaration, by wire name: one
    reason for every kind of fault, or a reason per kind (`Fault.kind`), each a text or a
    function of the fault."""
    CHECK_ORDER: ClassVar[tuple[str, ...]] = ()
    """The wire names a request is checked by, in the order the product reports them; empty:
    every field, in declaration order. Fields left out are not read from a request."""
    BLANK: ClassVar[frozenset[str]] = frozenset()
    """Fields for which `""` (a form's empty field) is absent."""


class Verbatim(Model, kw_only=True):
    VERBATIM: ClassVar[bool] = True


M = TypeVar("M", bound=Model)

END = r"(?![\s\S])"
"""The end of the text in a pattern (`$` of Python also matches before a final newline)."""


def one_of(options: Iterable[str]) -> Meta:
    """A text field that holds one of `options`, spelt exactly: checked and documented."""
    allowed = list(options)
    alternatives = "|".join(o if re.fullmatch(r"[\w-]+", o) else re.escape(o) for o in allowed)
    return Meta(pattern=f"^(?:{alternatives}){END}", extra_json_schema={"enum": allowed})


def digits(most: int) -> Meta:
    """The text form of a number field, `int | Annotated[str, digits(N)]`: up to `most` ASCII
    digits, spaces around them allowed. A request's text is read as the number (and checked
    against the int's bounds), as a form sends a number."""
    return Meta(pattern=rf"^\s*[0-9]{{1,{most}}}\s*{END}", description="the same number as text")


@dataclass(frozen=True, slots=True)
class Fault:
    """Why one field of a request breaks its declaration.

    `kind` is "required" (absent, null, or blank where `BLANK` says so), "type", "length",
    "pattern", "choice" or "range"; a fault of one item of an object is "key.KIND" or
    "value.KIND" with the item's `key`, and `value` is the item's.
    """

    field: str
    kind: str
    value: Any = None
    key: Any = None
    detail: str = "is required"
    """msgspec's words for it: the reason when the model words none."""


Reason = str | Callable[[Fault], str] | Mapping[str, str | Callable[[Fault], str]]


@dataclass(frozen=True, slots=True)
class _Field:
    attr: str
    wire: str
    type: Any
    required: bool
    nullable: bool
    blank: bool
    text: Any
    """The text form of a number field (`number`), else None."""


@functools.cache
def _plan(model: type[Model]) -> tuple[_Field, ...]:
    """The fields a request of `model` is read by, in its check order."""
    declared = {info.encode_name: info for info in msgspec.structs.fields(model)}
    names = model.CHECK_ORDER or tuple(declared)
    plan = []
    for name in names:
        info = declared[name]
        alternatives = _alternatives(info.type)
        inspected = [_bare(msgspec.inspect.type_info(t)) for t in alternatives]
        numeric = any(isinstance(t, msgspec.inspect.IntType) for t in inspected)
        text = next((a for a, t in zip(alternatives, inspected, strict=True)
                     if numeric and isinstance(t, msgspec.inspect.StrType) and t.pattern), None)
        plan.append(_Field(
            attr=info.name, wire=name, type=info.type, required=info.required,
            nullable=any(isinstance(t, msgspec.inspect.NoneType) for t in inspected),
            blank=name in model.BLANK, text=text))
    return tuple(plan)


def _alternatives(kind: Any) -> tuple[Any, ...]:
    """The members of a union type, through an `Annotated` around it; a type of one member alone."""
    if get_origin(kind) is Annotated:
        inner = get_args(kind)[0]
        if get_origin(inner) in (Union, types.UnionType):
            return _alternatives(inner)
        return (kind,)
    if get_origin(kind) in (Union, types.UnionType):
        return tuple(member for arg in get_args(kind) for member in _alternatives(arg))
    return (kind,)


def _bare(kind: msgspec.inspect.Type) -> msgspec.inspect.Type:
    """A type without the schema keywords it is annotated with."""
    return kind.type if isinstance(kind, msgspec.inspect.Metadata) else kind


def _absent(field: _Field, value: Any) -> bool:
    return value is UNSET or (value is None and not field.nullable) or (field.blank and value == "")


def check(model: type[M], data: Mapping[str, Any], *, prefix: str = "") -> tuple[M, dict[str, str]]:
    """`data` (a JSON body, or a form's fields) read as `model`: the form, and the reason of
    every field that breaks its declaration, by wire name (after `prefix`), in check order.

    Each field is checked against its declaration: its type, its constraints, whether it is
    required (null counts as absent where the type does not take null, and so does `""` in a
    `BLANK` field). A number sent as text is read as the number. A field that fails (or is
    absent) is UNSET in the form, so a caller reads only the fields without a reason.
    Keys the model does not check are ignored.
    """
    plan = _plan(model)
    given: dict[str, Any] = {}
    for field in plan:
        value = data.get(field.wire, UNSET)
        if _absent(field, value):
            continue
        if field.text is not None and isinstance(value, str):
            value = _as_number(field, value)
        given[field.wire] = value
    try:
        return msgspec.convert(given, model, strict=True), {}
    except (msgspec.ValidationError, UnicodeEncodeError):  # a lone surrogate fails a text choice so
        pass
    faults: dict[str, str] = {}
    kept: dict[str, Any] = {}
    for field in plan:
        value = given.get(field.wire, UNSET)
        fault = _fault(field, value, data.get(field.wire))
        if fault is None:
            if value is not UNSET:
                kept[field.attr] = value
            continue
        faults[prefix + field.wire] = _worded(model, field.wire, fault)
    unset = {f.attr: UNSET for f in plan if f.attr not in kept}
    return model(**kept, **unset), faults


def faults(model: type[Model], data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every field's reasons at once (the form of Prod-Manager's answer), in check order."""
    return {field: [reason] for field, reason in check(model, data)[1].items()}


def read(model: type[M], data: Mapping[str, Any]) -> M:
    """`data` as `model`; the first field that fails, in check order, is a 400 naming it,
    worded by the model's `REASONS` (as the family's envelope words it), else by msgspec."""
    form, found = check(model, data)
    first(found)
    return form


def first(found: Mapping[str, str], *fields: str) -> None:
    """Raise the fault of the first of `fields` (of every field when none is named) that has one."""
    for field in fields or tuple(found):
        if field in found:
            raise ValidationError(field, found[field])


def _as_number(field: _Field, value: str) -> int | str:
    """A number field's text as its number when it has the declared text form (else the
    text, which then fails that form)."""
    try:
        msgspec.convert(value, field.text, strict=True)
    except (msgspec.ValidationError, UnicodeEncodeError):
        return value
    return int(value)


def _fault(field: _Field, value: Any, sent: Any) -> Fault | None:
    if value is UNSET:
        return Fault(field.wire, "required", sent) if field.required else None
    try:
        msgspec.convert(value, field.type, strict=True)
    except UnicodeEncodeError:
        return Fault(field.wire, "type", value, detail="must be valid UTF-8 text")
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at ")
        if where and isinstance(value, dict):
            return _item_fault(field, value) or Fault(field.wire, _kind(message), value, detail=message)
        return Fault(field.wire, _kind(message), value, detail=message)
    return None


def _item_fault(field: _Field, value: dict[Any, Any]) -> Fault | None:
    """The first item of an object field that breaks the declared key or value type."""
    declared = _mapping_types(field.type)
    if declared is None:
        return None
    for key, item in value.items():
        for part, checked, kind in (("key", key, declared[0]), ("value", item, declared[1])):
            try:
                msgspec.convert(checked, kind, strict=True)
            except UnicodeEncodeError:
                return Fault(field.wire, f"{part}.type", checked, key, detail="must be valid UTF-8 text")
            except msgspec.ValidationError as exc:
                message = str(exc).partition(" - at ")[0]
                return Fault(field.wire, f"{part}.{_kind(message)}", checked, key, detail=message)
    return None


def _mapping_types(kind: Any) -> tuple[Any, Any] | None:
    """The key and value types of the mapping a field's type declares, if it declares one."""
    origin = get_origin(kind)
    if origin is dict:
        key, value = get_args(kind)
        return key, value
    if origin is Annotated or origin in (Union, types.UnionType):
        for arg in get_args(kind):
            if (found := _mapping_types(arg)) is not None:
                return found
    return None


def _kind(message: str) -> str:
    if ", got `" in message:
        return "type"
    if " of length " in message:
        return "length"
    if " matching regex " in message:
        return "pattern"
    if message.startswith("Invalid enum value"):
        return "choice"
    return "range"


def _worded(model: type[Model], wire: str, fault: Fault) -> str:
    reason = model.REASONS.get(wire)
    if isinstance(reason, Mapping):
        reason = reason.get(fault.kind)
    if reason is None:
        return fault.detail
    return reason if isinstance(reason, str) else reason(fault)


def query_schemas(model: type[Model]) -> list[tuple[str, dict[str, Any]]]:
    """The JSON Schema of each parameter of a query model, by wire name, in its check order.
    A number with a text form is documented as the number: a query string spells every value
    as text."""
    _, found = msgspec.json.schema_components([model])
    properties = found[model.__name__]["properties"]
    out = []
    for field in _plan(model):
        schema = dict(properties[field.wire])
        numbers = [s for s in schema.pop("anyOf", ()) if s.get("type") == "integer"]
        if field.text is not None and numbers:
            schema.update(numbers[0])
        out.append((field.wire, schema))
    return out


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
