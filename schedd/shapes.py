"""The base of every wire shape, and the reading of a request by its shape.

A shape is a `msgspec.Struct` (`Model`) whose fields are the wire names; see
schedd/api/models.py for the answers and the OpenAPI document. A family declares the
shapes of the requests it validates next to its service (`families/*/shapes.py`), so the
same declaration checks a request and documents it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import msgspec
from msgspec import UNSET, Struct

from schedd.errors import ValidationError


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
