"""Reading a YAML file (a persona script, a twin configuration, a list, a rates file) into plain
data plus the position of every key and value.

Only PyYAML's safe loader composes the file (no object construction, no custom tags); the
node tree is then turned into dicts, lists and scalars here, refusing what the format never
needs: deep nesting, alias expansion beyond a budget, non-text keys, duplicate keys and tags.
Every problem found is collected with its place so all of them are reported at once.
"""

from __future__ import annotations

import codecs
import copy
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import Reader
from yaml.resolver import Resolver

from harness.errors import InputError, Place

#: Largest file read; persona scripts and configurations are a few kilobytes.
MAX_BYTES = 5 * 1024 * 1024
#: Deepest nesting of lists and mappings (the format needs 6).
MAX_DEPTH = 64
#: Most values a document may expand to, counting every alias expansion (stops alias bombs).
MAX_VALUES = 100_000

#: A path into the document: mapping keys and list indices from the root.
Loc = tuple[str | int, ...]

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"


@dataclass
class Source:
    """A script's plain data and where each part of it is written."""

    path: Path
    data: Any = None
    #: Position of the value at each path (for a list item, the item).
    values: dict[Loc, Place] = field(default_factory=dict)
    #: Position of the key naming each mapping entry.
    keys: dict[Loc, Place] = field(default_factory=dict)
    errors: list[InputError] = field(default_factory=list)
    #: Paths whose value was refused while reading (its validation errors would repeat the news).
    refused: set[Loc] = field(default_factory=set)

    def error(self, message: str, place: Place | None) -> None:
        self.errors.append(InputError(self.path, message, place))

    def place(self, loc: Loc, *, key: bool = False) -> Place:
        """Best position for ``loc``: its key or value, else the nearest enclosing value."""
        if key and loc in self.keys:
            return self.keys[loc]
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.values:
                return self.values[loc[:end]]
        return Place(line=1, column=1)


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        self.mark = mark


try:
    from yaml.cyaml import CParser
except ImportError:  # PyYAML built without libyaml: the pure-Python safe loader
    _SafeBase: type = yaml.SafeLoader
else:

    class _SafeBase(Composer, CParser, SafeConstructor, Resolver):  # type: ignore[no-redef]
        """The safe loader's composer on libyaml's parser (5x faster than pure Python)."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            Composer.__init__(self)


class _Loader(_SafeBase):
    """The safe loader, with a nesting limit checked while composing (the composer recurses),
    and aliases kept apart from their anchors so the builder can place and meter them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                # A shallow copy shares the anchored node's children but carries the alias's place.
                alias = copy.copy(super().compose_node(parent, index))
                alias.start_mark = event.start_mark
                alias.alias = event.anchor  # type: ignore[attr-defined]
                return alias
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _mark_place(mark: yaml.Mark | None) -> Place | None:
    return Place(line=mark.line + 1, column=mark.column + 1) if mark is not None else None


def _decode(path: Path, raw: bytes) -> str | InputError:
    nul = raw.find(b"\0")
    if nul >= 0:
        return InputError(path, "binary file (NUL byte), not a YAML script", Place(offset=nul))
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        return InputError(path, "not UTF-8 text (binary file?), not a YAML script", Place(offset=bom + exc.start))


def read_source(path: Path) -> Source:
    """Read and compose ``path``; problems are in ``Source.errors`` (never raised)."""
    source = Source(path)
    try:
        if not path.is_file():
            source.error("not a regular file", None)
            return source
        size = path.stat().st_size
        if size > MAX_BYTES:
            source.error(
                f"file is {size / 1e6:.1f} MB, over the {MAX_BYTES // (1024 * 1024)} MB limit of a script; not read",
                None,
            )
            return source
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        source.error(f"cannot read: {exc.strerror or exc}", None)
        return source
    if len(raw) > MAX_BYTES:  # grew while being read
        source.error(f"file is over the {MAX_BYTES // (1024 * 1024)} MB limit of a script; not read", None)
        return source
    text = _decode(path, raw)
    if isinstance(text, InputError):
        source.errors.append(text)
        return source
    bad = Reader.NON_PRINTABLE.search(text)
    if bad:
        start = bad.start()
        place = Place(line=text.count("\n", 0, start) + 1, column=start - text.rfind("\n", 0, start))
        source.error(f"character U+{ord(bad.group()):04X} is not allowed in a YAML file", place)
        return source
    node = _compose(source, text)
    if node is None:
        if not source.errors:
            source.error(
                "empty script: expected a persona (keys persona, speech, session, skills, builtins)",
                Place(line=1, column=1),
            )
        return source
    source.data = _Builder(source).build(node)
    return source


def _compose(source: Source, text: str) -> Node | None:
    loader = None
    try:
        loader = _Loader(text)
        return loader.get_single_node()
    except _TooDeep as exc:
        source.error(f"nesting deeper than {MAX_DEPTH} levels", _mark_place(exc.mark))
    except yaml.reader.ReaderError as exc:  # checked before parsing; kept so no input can escape
        source.error(f"YAML reader error: {exc.reason}", Place(line=1, column=1))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        said = ", ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        source.error(f"YAML syntax error: {said}", _mark_place(mark))
    except yaml.YAMLError as exc:
        source.error(f"YAML error: {exc}", Place(line=1, column=1))
    finally:
        if loader is not None and hasattr(loader, "dispose"):
            loader.dispose()
    return None


class _Budget(Exception):
    pass


class _Builder:
    """Turns composed nodes into plain data, recording positions and problems."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.count = 0
        self.depth = 0
        self.active: set[int] = set()
        self.sizes: dict[int, int] = {}
        self.constructor = yaml.SafeLoader("")

    def build(self, node: Node) -> Any:
        try:
            return self._value(node, ())
        except _Budget:
            return None

    def _value(self, node: Node, loc: Loc) -> Any:
        place = _mark_place(node.start_mark)
        alias = getattr(node, "alias", None)
        if alias is not None and self.count + self._size(node) > MAX_VALUES:
            self.source.error(
                f"alias *{alias} expands to {self._size(node)} values, taking the script over "
                f"{MAX_VALUES} values (an alias bomb?)",
                place,
            )
            raise _Budget
        self.count += 1
        if self.count > MAX_VALUES:
            self.source.error(f"more than {MAX_VALUES} values in one script", place)
            raise _Budget
        self.source.values.setdefault(loc, place)
        if isinstance(node, ScalarNode):
            return self._scalar(node, loc)
        if id(node.value) in self.active:
            self.source.error(f"alias *{alias} refers to a list or mapping that contains it", place)
            return None
        if self.depth >= MAX_DEPTH:
            self.source.error(f"nesting deeper than {MAX_DEPTH} levels (through aliases)", place)
            raise _Budget
        self.active.add(id(node.value))
        self.depth += 1
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ_TAG:
                    self._bad_tag(node, loc)
                return [self._value(item, (*loc, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            if node.tag != _MAP_TAG:
                self._bad_tag(node, loc)
            return self._mapping(node, loc)
        finally:
            self.depth -= 1
            self.active.discard(id(node.value))

    def _size(self, node: Node) -> int:
        """How many values ``node`` expands to (aliases counted in full; cycles counted once)."""
        if isinstance(node, ScalarNode):
            return 1
        key = id(node.value)
        if key not in self.sizes:
            self.sizes[key] = 1  # provisional: a cycle ends here, and is reported when built
            children = [v for pair in node.value for v in pair] if isinstance(node, MappingNode) else node.value
            self.sizes[key] = 1 + sum(self._size(child) for child in children)
        return self.sizes[key]

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, Place] = {}
        for key_node, value_node in node.value:
            key_place = _mark_place(key_node.start_mark)
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.source.error("merge keys (<<) are not supported; write the keys out", key_place)
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag not in _PLAIN_TAGS:
                self.source.error("a key must be a plain word, not a list, mapping or tagged value", key_place)
                continue
            # The key as written: YAML would read `on:` or `1:` as a boolean or number.
            key = key_node.value
            if key in seen:
                first = seen[key]
                self.source.error(f"duplicate key '{key}' (first at line {first.line})", key_place)
                continue
            seen[key] = key_place
            self.source.keys[(*loc, key)] = key_place
            result[key] = self._value(value_node, (*loc, key))
        return result

    def _scalar(self, node: ScalarNode, loc: Loc) -> Any:
        if node.tag not in _PLAIN_TAGS:
            self._bad_tag(node, loc)
            return node.value
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError):
            # e.g. a timestamp-looking value YAML cannot turn into a date: keep the text.
            return node.value
        if isinstance(value, float) and value != value:
            return node.value  # .nan never fits a setting; keep the text for the message
        return value

    def _bad_tag(self, node: Node, loc: Loc) -> None:
        self.source.refused.add(loc)
        self.source.error(
            f"tag '{node.tag.replace('tag:yaml.org,2002:', '!!')}' is not allowed: "
            "these files hold only text, numbers, lists and mappings",
            _mark_place(node.start_mark),
        )


def is_date(value: Any) -> bool:
    """Whether YAML turned a plain value into a date or time."""
    return isinstance(value, (datetime.date, datetime.datetime))
