"""Typed records and their JSON: one writer and one reader for every record that crosses a file or a process
(a manifest's sections, a measurement a board sends back, ExecuTorch's delegation report), so that the steps
between them pass fields, never a dict[str, Any] read by string keys.

A record is a dataclass. `as_json` writes its fields in order (enums by value, tuples as lists, records inside
as objects); `from_json` reads one back with each value checked against its field's type: a wrong type is a
TypeError, a missing required field a ValueError (the manifest reader turns either into one ArtifactError line).
Field markers keep the formats written before exactly as they were:

- `optional()`: left out of the JSON while it is None (where an absent key and a null differ in those formats);
- `flat()`: a record whose fields sit in the enclosing object (an optional one is read where the object holds
  every field that record requires);
- `extra()`: the keys of the object no field declares, kept and written back after the declared ones;
- `optional(key="id")` / `renamed("id")`: a JSON key that is not the field's name.

Numpy-free and torch-free: boards run it (Python 3.10, like the rest of the board layers).
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any, TypeVar, cast

__all__ = ["as_json", "from_json", "read_field", "optional", "flat", "extra", "renamed"]

T = TypeVar("T")

_KEY, _OMIT, _FLAT, _EXTRA = "json_key", "json_omit_none", "json_flat", "json_extra"


def optional(default: Any = None, *, key: str | None = None) -> Any:
    """A field left out of the JSON while it is None (`key`: its name in the JSON where that differs)."""
    return dataclasses.field(default=default, metadata={_OMIT: True, **({_KEY: key} if key else {})})


def renamed(key: str, default: Any = dataclasses.MISSING) -> Any:
    """A field written as `key` (a JSON name that is no Python name, or one the field cannot take)."""
    return dataclasses.field(default=default, metadata={_KEY: key})


def flat(default: Any = dataclasses.MISSING) -> Any:
    """A record whose fields are written into the enclosing object; with `default=None` it may be absent."""
    return dataclasses.field(default=default, metadata={_FLAT: True})


def extra() -> Any:
    """The keys no field declares: kept on reading, written back after the declared fields."""
    return dataclasses.field(default_factory=dict, metadata={_EXTRA: True})


def as_json(record: Any) -> dict[str, Any]:
    """A record as a JSON object (the one serialiser of typed records at a file or process boundary)."""
    out: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    for spec in dataclasses.fields(record):
        value, meta = getattr(record, spec.name), spec.metadata
        if meta.get(_EXTRA):
            kept = value
        elif meta.get(_FLAT):
            if value is not None:
                out.update(as_json(value))
        elif value is not None or not meta.get(_OMIT):
            out[meta.get(_KEY, spec.name)] = _plain(value)
    out.update({key: value for key, value in kept.items() if key not in out})
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return as_json(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def from_json(cls: type[T], data: Any) -> T:
    """`cls` read from a JSON object, each value checked against its field's type (TypeError, ValueError)."""
    name, record = cls.__name__, cast(Any, cls)
    if not isinstance(data, dict):
        raise TypeError(f"{name} must be a JSON object, not {type(data).__name__}")
    hints = _hints(record)
    values: dict[str, Any] = {}
    kept: str | None = None
    for spec in dataclasses.fields(record):
        meta, hint = spec.metadata, hints[spec.name]
        required = spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        if meta.get(_EXTRA):
            kept = spec.name
        elif meta.get(_FLAT):
            inner = _record_type(hint)
            if required or _holds(inner, data):
                values[spec.name] = from_json(inner, data)
        elif meta.get(_KEY, spec.name) in data:
            key = meta.get(_KEY, spec.name)
            values[spec.name] = _convert(hint, data[key], f"{name}.{key}")
        elif required:
            raise ValueError(f"{name} has no '{meta.get(_KEY, spec.name)}'")
    if kept is not None:
        declared = _keys(record)
        values[kept] = {key: value for key, value in data.items() if key not in declared}
    return cls(**values)


@functools.lru_cache(maxsize=None)
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.lru_cache(maxsize=None)
def _keys(cls: Any) -> frozenset[str]:
    """The JSON keys a record's fields take, its flat records' included."""
    hints, found = _hints(cls), set[str]()
    for spec in dataclasses.fields(cls):
        if spec.metadata.get(_FLAT):
            found |= _keys(_record_type(hints[spec.name]))
        elif not spec.metadata.get(_EXTRA):
            found.add(spec.metadata.get(_KEY, spec.name))
    return frozenset(found)


def _holds(cls: type, data: dict[str, Any]) -> bool:
    """Whether `data` holds every field `cls` requires (an optional flat record is there or not as a whole)."""
    return all(spec.metadata.get(_KEY, spec.name) in data for spec in dataclasses.fields(cls)
               if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
               and not spec.metadata.get(_FLAT))


def _record_type(hint: Any) -> type:
    """The record class of a flat field's hint (`Latency` or `Latency | None`)."""
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate) and isinstance(candidate, type):
            return candidate
    raise TypeError(f"a flat field must hold a record, not {hint}")


def _convert(hint: Any, value: Any, where: str) -> Any:
    """`value` as the type `hint` says, or TypeError naming where it was found."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _union(args, value, where)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_json(hint, value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if origin in (list, tuple):
        return _sequence(origin, args, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"{where} must be an object, not {type(value).__name__}")
        return {str(key): _convert(args[1], item, f"{where}.{key}") for key, item in value.items()}
    return _scalar(hint, value, where)


def _union(args: tuple[Any, ...], value: Any, where: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors: list[Exception] = []
    for arg in (a for a in args if a is not type(None)):
        try:
            return _convert(arg, value, where)
        except (TypeError, ValueError) as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    raise TypeError(f"{where} is none of {' | '.join(map(_name, args))}")


def _sequence(origin: Any, args: tuple[Any, ...], value: Any, where: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{where} must be a list, not {type(value).__name__}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise TypeError(f"{where} must hold {len(args)} values, not {len(value)}")
        return tuple(_convert(arg, item, f"{where}[{i}]") for i, (arg, item) in enumerate(zip(args, value)))
    items = [_convert(args[0] if args else Any, item, f"{where}[{i}]") for i, item in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError as exc:
                raise ValueError(f"{where} is too large a number") from exc
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"{where}: a record field of type {_name(hint)} cannot be read from JSON")
    raise TypeError(f"{where} must be {_name(hint)}, not {type(value).__name__}")


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def read_field(cls: type, name: str, value: Any) -> Any:
    """`value` read as the field `name` of the record `cls`, as `from_json` reads each field."""
    return _convert(_hints(cls)[name], value, f"{cls.__name__}.{name}")
