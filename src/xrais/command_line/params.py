"""DIALS-style parameters for xrais programs: ``key=value`` words (dotted scopes, unique suffixes
accepted, e.g. ``json=out.json`` for ``output.json``), parameter files (``*.phil``/``*.params``),
``-h`` for help, ``-c`` to show the full configuration, with types, defaults and validation.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple


class ParameterError(ValueError):
    """A parameter word on the command line is unknown, ambiguous or has a bad value."""


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", ""}


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter: dotted name, default, type, help.

    kind: "int", "float", "bool", "str", "path", "choice", "floats", "ints", "strs";
    choices: allowed values for "choice"; length: required count for "floats"/"ints" (None: any);
    minimum/maximum: bounds for numbers; optional: None (written ``None``) is allowed.
    """

    name: str
    default: Any
    help: str
    kind: str = "str"
    choices: Tuple[str, ...] = ()
    length: Optional[int] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    optional: bool = False

    def convert(self, text: str):
        """Parse one value as written on the command line."""
        raw = text.strip()
        if raw.lower() in _NONE and (self.optional or self.default is None):
            return None
        try:
            value = self._convert(raw)
        except ValueError as exc:
            raise ParameterError(f"{self.name}={text}: {exc}") from None
        self._check(value, text)
        return value

    def _convert(self, raw: str):
        if self.kind in ("int", "float"):
            return _number(raw, self.kind)
        if self.kind == "bool":
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError("expected True or False")
        if self.kind == "choice":
            if raw not in self.choices:
                raise ValueError(f"expected one of {', '.join(self.choices)}")
            return raw
        if self.kind in ("floats", "ints", "strs"):
            items = [item for item in raw.replace(",", " ").split() if item]
            if self.kind == "strs":
                return tuple(items)
            return tuple(_number(item, self.kind[:-1], several=True) for item in items)
        if self.kind in ("str", "path"):
            if not raw:
                raise ValueError("expected a value")
            return raw
        raise ValueError(f"unknown parameter kind {self.kind}")

    def _check(self, value, text):
        if value is None:
            return
        if self.choices and self.kind != "choice" and self.format(value) not in self.choices:
            raise ParameterError(f"{self.name}={text}: expected one of {', '.join(self.choices)}")
        values = value if isinstance(value, tuple) else (value,)
        if self.length is not None and isinstance(value, tuple) and len(value) != self.length:
            raise ParameterError(f"{self.name}={text}: expected {self.length} values")
        if self.kind in ("int", "float", "ints", "floats"):
            for v in values:
                if v != v or (self.minimum is not None and v < self.minimum) or (self.maximum is not None and v > self.maximum):
                    bounds = f"{self.minimum if self.minimum is not None else '-inf'} to {self.maximum if self.maximum is not None else 'inf'}"
                    raise ParameterError(f"{self.name}={text}: out of range ({bounds})")

    def format(self, value) -> str:
        if value is None:
            return "None"
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value)
        return str(value)

    def describe_type(self) -> str:
        if self.choices:
            return "|".join(self.choices)
        if self.kind in ("floats", "ints") and self.length:
            return f"{self.length} {self.kind}"
        return self.kind


def _number(text: str, kind: str, several: bool = False):
    """An int or float (kind) as written on the command line, one of several when ``several``
    (a ValueError in the program's words)."""
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        wanted = ("whole numbers" if kind == "int" else "numbers") if several else \
            ("a whole number" if kind == "int" else "a number")
        raise ValueError(f"expected {wanted}" + (f" separated by commas ({text!r} is not one)" if several else "")) \
            from None


class Namespace:
    """Parameter values with attribute access by scope (``params.output.json``)."""

    def __init__(self, values: Dict[str, Any]):
        self._values = dict(values)

    def __getattr__(self, name):
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        prefix = name + "."
        scoped = {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}
        if scoped:
            return Namespace(scoped)
        raise AttributeError(name)

    def as_dict(self) -> Dict[str, Any]:
        return dict(self._values)


class Parameters:
    """A program's parameter definitions."""

    def __init__(self, params: Sequence[Param]):
        self.params = list(params)
        self.by_name = {p.name: p for p in self.params}
        if len(self.by_name) != len(self.params):
            raise ValueError("duplicate parameter names")

    def resolve(self, key: str) -> Param:
        """The parameter a (possibly abbreviated) dotted name refers to."""
        if key in self.by_name:
            return self.by_name[key]
        matches = [p for p in self.params if p.name.endswith("." + key)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ParameterError(f"unknown parameter: {key}")
        raise ParameterError(f"ambiguous parameter {key}: could be {', '.join(p.name for p in matches)}")

    def parse(self, words: Sequence[str], is_input: Callable[[str], bool] = lambda word: True):
        """(Namespace of values, positional input words) from command-line words and .phil files."""
        values = {p.name: p.default for p in self.params}
        inputs: List[str] = []
        for word in words:
            if "=" in word and not os.path.exists(word):
                key, _, text = word.partition("=")
                param = self.resolve(key.strip())
                values[param.name] = param.convert(text)
            elif word.endswith((".phil", ".params")) and os.path.isfile(word):
                for key, text in _read_parameter_file(word):
                    param = self.resolve(key)
                    values[param.name] = param.convert(text)
            elif word.startswith("-") and len(word) > 1 and not os.path.exists(word):
                raise ParameterError(f"unknown option: {word}")
            else:
                if not is_input(word):
                    raise ParameterError(f"unexpected argument: {word}")
                inputs.append(word)
        return Namespace(values), inputs

    def show(self, values: Optional[Namespace] = None, with_help: bool = False) -> str:
        """The configuration as a parameter file (defaults, or the given values)."""
        current = values.as_dict() if values is not None else {p.name: p.default for p in self.params}
        lines = []
        for p in self.params:
            if with_help:
                lines.append(f"  # {p.help} [{p.describe_type()}]")
            lines.append(f"{p.name} = {p.format(current[p.name])}")
        return "\n".join(lines)


def _read_parameter_file(path: str):
    """key = value lines of a parameter file (``#`` comments, blank lines ignored)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read this parameter file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ParameterError(f"{path}: not a parameter file (not UTF-8 text)") from None
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise ParameterError(f"{path}:{number}: expected key = value, got {line!r}")
        key, _, value = line.partition("=")
        yield key.strip(), value.strip()
