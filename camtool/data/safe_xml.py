"""XML parsed with expat for annotation files, line numbers kept. Document types and entities are
refused both before parsing and by expat's handlers, so entity expansion attacks cannot run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from camtool.errors import InputError

__all__ = ["MAX_XML_BYTES", "XmlNode", "number", "parse_xml"]

MAX_XML_BYTES = 16 * 1024 * 1024
"""Larger XML files are refused unread."""


@dataclass
class XmlNode:
    tag: str
    line: int
    children: list[XmlNode] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def find(self, tag: str) -> XmlNode | None:
        return next((c for c in self.children if c.tag == tag), None)

    def value(self) -> str:
        return "".join(self.text).strip()


def parse_xml(file: Path) -> XmlNode:
    """``file`` as a tree with line numbers; InputError (file and line) for malformed XML, DTDs
    and entities."""
    try:
        size = file.stat().st_size
        if size > MAX_XML_BYTES:
            raise InputError(f"{file}: {size} bytes is too large for an annotation file")
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read box file {file}: {exc.strerror or exc}") from None
    upper = data.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise InputError(f"{file}: refusing XML with a DOCTYPE or ENTITY declaration")
    parser = expat.ParserCreate()
    stack: list[XmlNode] = []
    roots: list[XmlNode] = []

    def start(tag: str, _attrs: dict[str, str]) -> None:
        node = XmlNode(tag, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def text(chunk: str) -> None:
        if stack:
            stack[-1].text.append(chunk)

    def refuse(*_args: object) -> int:
        line = parser.CurrentLineNumber
        raise InputError(f"{file} line {line}: refusing XML with a DOCTYPE or ENTITY")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        message = expat.ErrorString(exc.code) if exc.code else str(exc)
        raise InputError(f"{file} line {exc.lineno}: not well-formed XML ({message})") from None
    return roots[0]


def number(node: XmlNode | None, parent: XmlNode, name: str, file: Path) -> float:
    """The finite number ``node`` (the child ``name`` of ``parent``) holds, else an InputError."""
    if node is None:
        raise InputError(f"{file} line {parent.line}: <{parent.tag}> lacks <{name}>")
    text = node.value()
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{file} line {node.line}: <{name}> is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{file} line {node.line}: <{name}> is not finite: {text!r}")
    return value
