"""xsdata's XML for the plain models of an ETSI report, written in one pass.

pyHanko's ETSI TS 119 102-2 report is a tree of xsdata dataclasses. xsdata's serializer
turns it into SAX events, a Python generator per field, and a writer turns the events into
text: for a consent's report (43 elements) the events took 0.31 ms and the writer 0.25 ms
(``python -m bench.verify``'s consents, 2026-11-30), more inside a running engine. This
module writes the same text straight from the tree, for the models such a report uses:
elements holding models or simple values, lists of them, attributes and text, in the
namespaces of the serializer's map. Anything else (a filled wildcard, choice or mixed
field, a nillable or wrapped field, ``xsi:type``, a namespace outside the map, a value
that may be a QName) raises :class:`UnsupportedError`, and the caller uses xsdata itself.
``tests/test_xml_writer.py`` holds the text to xsdata's, byte for byte, on the reports of
real validations. A consent's report: 0.17–0.21 ms here against xsdata's 0.64–0.74 ms
(a throwaway script over 40 reports, three passes, an Intel Xeon, 2026-11-30).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from xsdata.formats.converter import converter
from xsdata.formats.dataclass.context import XmlContext
from xsdata.formats.dataclass.models.elements import XmlMeta, XmlVar
from xsdata.utils.collections import is_array
from xsdata.utils.namespaces import split_qname


class UnsupportedError(Exception):
    """The tree holds something this writer does not write as xsdata would."""


class XmlWriter:
    """Writes models as xsdata's ``XmlSerializer`` with ``XmlEventWriter`` does, with an
    XML declaration, UTF-8 and ``indent``, for the namespace map ``ns_map``."""

    def __init__(self, context: XmlContext, ns_map: dict[str, str], indent: str) -> None:
        """``ns_map`` maps prefixes to URIs, in the order they are declared on the root."""
        self._context = context
        self._indent = indent
        self._prefixes = {uri: prefix for prefix, uri in ns_map.items()}
        self._declarations = "".join(
            f' xmlns:{prefix}="{uri}"' for prefix, uri in ns_map.items()
        )  # XMLGenerator writes a declaration's URI as it is, unescaped
        self._plans: dict[type, _Plan] = {}

    def render(self, obj: Any) -> str:
        """The document of ``obj``; :class:`UnsupportedError` if xsdata might write it otherwise."""
        plan = self._plan(type(obj))
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
        self._element(obj, plan, self._name(plan.qname), 0, out)
        out.append("\n")
        return "".join(out)

    def _plan(self, cls: type) -> _Plan:
        plan = self._plans.get(cls)
        if plan is None:
            plan = self._plans[cls] = _Plan(self._context.build(cls), self._name)
        return plan

    def _name(self, qname: str) -> str:
        """``prefix:local`` for an element's qualified name."""
        uri, local = split_qname(qname)
        prefix = self._prefixes.get(uri or "")
        if prefix is None:
            raise UnsupportedError(f"{qname}: its namespace is not in the map")
        return f"{prefix}:{local}"

    def _element(self, obj: Any, plan: _Plan, tag: str, level: int, out: list[str]) -> None:
        if level:
            out.append("\n" + self._indent * level)
        out.append("<" + tag)
        if not level:
            out.append(self._declarations)
        for name in plan.empty:
            if not _nothing(getattr(obj, name)):
                raise UnsupportedError(f"{plan.name}.{name}: not written here")
        for name, var in plan.attributes:
            value = getattr(obj, name)
            if not _nothing(value):
                out.append(f" {var.local_name}={quoteattr(_text(value, var))}")
        text, inner = self._content(obj, plan, level + 1)
        if inner:
            out.append(">")
            out.extend(inner)
            out.append(f"\n{self._indent * level}</{tag}>")
        elif text:
            out.append(f">{escape(text)}</{tag}>")
        else:
            out.append("/>")

    def _content(self, obj: Any, plan: _Plan, level: int) -> tuple[str | None, list[str]]:
        """The text of ``obj``, and its child elements written at ``level``."""
        text = None
        inner: list[str] = []
        for name, var, kind, child_tag in plan.elements:
            value = getattr(obj, name)
            if value is None:
                continue
            if kind is _TEXT:
                text = _text(value, var)
                continue
            for item in _items(value, var, kind):
                if item is None:
                    raise UnsupportedError(f"{plan.name}.{name}: None in a list")
                if not self._context.class_type.is_model(item):
                    self._simple(item, var, child_tag, level, inner)
                elif type(item) in var.types:
                    self._element(item, self._plan(type(item)), child_tag, level, inner)
                else:
                    raise UnsupportedError(f"{plan.name}.{name}: needs an xsi:type")
        if inner and text:
            raise UnsupportedError(f"{plan.name}: text and elements")
        return text, inner

    def _simple(self, value: Any, var: XmlVar, tag: str, level: int, out: list[str]) -> None:
        text = _text(value, var)
        indent = "\n" + self._indent * level
        out.append(f"{indent}<{tag}>{escape(text)}</{tag}>" if text else f"{indent}<{tag}/>")


_ELEMENT, _LIST, _TEXT = "element", "list", "text"


class _Plan:
    """What the writer needs of a model's fields, checked once per class. Fields this
    writer does not write (wildcards, choices, mixed content, ``xs:anyType``, sequences)
    must be empty: they are checked on every object, and xsdata writes nothing for them."""

    def __init__(self, meta: XmlMeta, name_of: Callable[[str], str]) -> None:
        self.name = meta.clazz.__name__
        self.qname = meta.qname  # the element's name when the model is the root
        if meta.nillable:
            raise UnsupportedError(f"{self.name}: nillable")
        self.attributes: list[tuple[str, XmlVar]] = []
        self.empty: list[str] = []  # the names of fields that must hold nothing
        for var in meta.get_attribute_vars():
            if not var.is_attribute:
                self.empty.append(var.name)
            elif split_qname(var.qname)[0]:
                raise UnsupportedError(f"{self.name}.{var.name}: a qualified attribute")
            else:
                self.attributes.append((var.name, var))
        self.elements: list[tuple[str, XmlVar, str, str]] = []
        for var in meta.get_element_vars():
            if var.nillable or var.wrapper_qname:
                raise UnsupportedError(f"{self.name}.{var.name}: nillable or wrapped")
            if var.is_text and not var.mixed:
                self.elements.append((var.name, var, _TEXT, ""))
            elif (
                var.is_element
                and var.sequence is None
                and not (var.any_type or var.is_elements or var.mixed)
            ):
                kind = _LIST if var.list_element and not var.tokens else _ELEMENT
                self.elements.append((var.name, var, kind, name_of(var.qname)))
            else:
                self.empty.append(var.name)


def _items(value: Any, var: XmlVar, kind: str) -> Iterable[Any]:
    """The values of a field to write as one element each, as xsdata's ``convert_value``
    takes them: a list's (nested lists flattened), a list of token lists', or the value."""
    if kind is _LIST:
        return _flat(value)
    if var.tokens:
        if not value:
            return ()  # xsdata writes no element for an empty list of tokens
        if is_array(value[0]):
            return list(value)  # an element per list of tokens
    return (value,)


def _flat(value: Any) -> Iterator[Any]:
    """The items of a list, of the lists in it, and so on; a value that is no list alone."""
    if is_array(value):
        for item in value:
            yield from _flat(item)
    else:
        yield value


def _nothing(value: Any) -> bool:
    """Whether xsdata writes nothing for a field holding ``value``: None or empty."""
    return value is None or (isinstance(value, list | tuple | dict) and not value)


def _text(value: Any, var: XmlVar) -> str:
    """A simple value as xsdata writes it (``encode_primitive``, then the writer's
    ``encode_data``), refusing what the writer would treat as a qualified name."""
    if is_array(value):
        if not var.tokens or not isinstance(value, list | tuple):
            raise UnsupportedError(f"{var.name}: a list in a single value")
        if any(is_array(item) for item in value):
            raise UnsupportedError(f"{var.name}: a list of lists")
        return " ".join(_text(item, var) for item in value)
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        if value.startswith("{"):
            raise UnsupportedError(f"{var.name}: a value that reads as a qualified name")
        return value
    text = converter.serialize(value, format=var.format)
    if not isinstance(text, str) or text.startswith("{"):
        raise UnsupportedError(f"{var.name}: {type(value).__name__}")
    return text
