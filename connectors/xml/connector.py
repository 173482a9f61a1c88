"""The ``xml`` connector: records of an XML file, one row per record element.

The file is read in blocks of whole records (``splitter.py``). Flat records (attributes and leaf
children) take the fast lane (``fastlane.py``): bytes to Arrow columns with numpy and Arrow kernels.
Any other block is the lxml way: lxml parses it in one go and each column is pulled out of the whole
block by one XPath expression when every record has exactly one value there (the usual case), and
record by record otherwise. A record that is not well-formed, or that fails the optional XSD, becomes
a row with ``_hub_error`` (the reason and its line) and null fields, so it is quarantined while the
rest of the file loads. Values are text; the contract's validator parses them.

A file that is not XML fails naming it: compressed or binary data is refused before reading
(``connectors.common.sniff``), and a non-empty file without a single record element (random bytes, a
record tag renamed at the source) is an error naming the file and the expected tag, not 0 rows.

Blocks are decoded in parallel threads and handed on in file order (``ordered.py``); the fast lane
runs in parallel, the lxml way one block at a time.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

from connectors.common.sniff import head_of, require_text
from connectors.xml.config import XmlConfig
from connectors.xml.fastlane import FastLane
from connectors.xml.ordered import map_in_order
from connectors.xml.splitter import Block, RecordSplitter
from hub.errors import ConfigError, SourceDataError, SourceUnavailableError
from hub.ingest.connector import (
    ERROR_COLUMN,
    RESERVED_COLUMNS,
    ROW_COLUMN,
    SOURCE_COLUMN,
    CheckResult,
    Connector,
    StreamSpec,
)
from hub.ingest.prefetch import prefetch

WRAPPER = "_hub_block"
_LINE = re.compile(r"\bline (\d+)")
_LANE_SAMPLE = 500  # records whose layout the fast lane is built from
_STEP = re.compile(r"^(@?)([A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)$")


class XmlConnector(Connector[XmlConfig]):
    name = "xml"
    version = "1.0.0"
    config_model = XmlConfig
    description = "Records of an XML file (streaming, record path and field mapping, optional XSD)."

    # --- setup -----------------------------------------------------------------------------------
    @property
    def file(self) -> Path:
        p = Path(self.config.path)
        return p if p.is_absolute() else Path(self.context.base_dir) / p

    def streams(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                name=self.config.stream or Path(self.config.path).stem,
                primary_key=tuple(self.config.primary_key),
                cursor_field=self.config.cursor_field,
                write_mode=self.config.write_mode,
            )
        ]

    def _schema(self) -> etree.XMLSchema | None:
        if not self.config.xsd:
            return None
        p = Path(self.config.xsd)
        p = p if p.is_absolute() else Path(self.context.base_dir) / p
        try:
            return etree.XMLSchema(etree.parse(str(p)))
        except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
            raise ConfigError(f"connector xml: XSD {p} cannot be used: {exc}") from exc

    def check(self) -> CheckResult:
        if not self.file.is_file():
            return CheckResult(False, f"{self.file}: no such file")
        try:
            self._schema()
            first = next(iter(self._batches(limit_blocks=1)), None)
        except (ConfigError, SourceDataError, OSError) as exc:
            return CheckResult(False, str(exc))
        if first is None or first.num_rows == 0:  # an empty file
            return CheckResult(False, f"{self.file}: no <{self.config.tag}> element found")
        fields = [n for n in first.schema.names if n not in RESERVED_COLUMNS]
        return CheckResult(
            True, f"{self.file}: records found; columns {', '.join(fields)}", {"columns": fields}
        )

    def prefetch(self, stream: str) -> bool:
        """No: ``read`` reads ahead itself (one reading thread per stream)."""
        return False

    def read(self, stream: str, state: dict[str, Any] | None) -> Iterator[pa.RecordBatch]:
        self.stream(stream)
        cursor = self.config.cursor_field
        after = state.get("cursor") if state and cursor else None
        for batch in prefetch(self._batches()):  # the next block is converted while this one is used
            if self.context.progress is not None:
                self.context.progress(batch.num_rows)
            if after is not None and cursor in batch.schema.names:
                # newer rows, and the unreadable ones (they are quarantined again while the source is broken)
                keep = pc.or_kleene(
                    pc.greater(batch.column(cursor), pa.scalar(str(after))),
                    pc.is_valid(batch.column(ERROR_COLUMN)),
                )
                batch = batch.filter(pc.fill_null(keep, False))
                if not batch.num_rows:
                    continue
            yield batch

    # --- reading ---------------------------------------------------------------------------------
    def _batches(self, limit_blocks: int | None = None) -> Iterator[pa.RecordBatch]:
        splitter = RecordSplitter(self.config.tag, self.config.block_bytes)
        xsd = self._schema()
        reader = _BlockReader(self.config, splitter, xsd, self.file.name)
        try:
            fh = self.file.open("rb")
        except OSError as exc:
            raise SourceUnavailableError(f"{self.file}: cannot open: {exc}") from exc
        with fh:
            require_text(self.file, self.file.name, "XML")
            blocks: Iterator[Block] = splitter.blocks(fh)
            if limit_blocks is not None:
                blocks = islice(blocks, limit_blocks)
            for batch in map_in_order(reader.read, blocks, first=reader.prepare):
                if batch.num_rows:
                    yield batch
        if not splitter.found and self.file.stat().st_size:
            raise _no_records(self.file, self.config.tag)


class _BlockReader:
    def __init__(self, config: XmlConfig, splitter: RecordSplitter, xsd: etree.XMLSchema | None, source: str):
        self.config = config
        self.splitter = splitter
        self.xsd = xsd
        self.source = source
        self.fields: dict[str, str] | None = dict(config.fields) or None
        self.ns: dict[str, str] = dict(config.namespaces)
        self.parser: etree.XMLParser | None = None
        self.record_xpath = ""
        self.lane: FastLane | None = None
        self.try_lane = True
        self.lane_rebuilds = 0
        self._lock = threading.Lock()

    def _setup(self) -> None:
        prolog = self.splitter.prolog
        assert prolog is not None
        if "" in prolog.namespaces and "_d" not in self.ns:
            self.ns["_d"] = prolog.namespaces[""]
        self.parser = etree.XMLParser(
            encoding=prolog.encoding, resolve_entities=False, no_network=True, huge_tree=True
        )
        self.record_xpath = self._qualify(self.config.tag)

    def _qualify(self, path: str) -> str:
        steps = []
        for step in path.split("/"):
            m = _STEP.match(step)
            if m is None:
                raise ConfigError(f"connector xml: {path!r} is not a path like child, child/@attr or @attr")
            at, prefix, local = m.groups()
            if prefix:
                p = prefix[:-1]
                if p not in self.ns and self.splitter.prolog and p in self.splitter.prolog.namespaces:
                    self.ns[p] = self.splitter.prolog.namespaces[p]
            elif not at and "_d" in self.ns:
                prefix = "_d:"
            steps.append(f"{at}{prefix or ''}{local}")
        return "/".join(steps)

    def _wrap(self, data: bytes) -> bytes:
        assert self.splitter.prolog is not None
        return (
            b"<"
            + WRAPPER.encode()
            + self.splitter.prolog.declarations
            + b">"
            + data
            + b"</"
            + WRAPPER.encode()
            + b">"
        )

    def _discover(self, record: etree._Element) -> dict[str, str]:
        fields: dict[str, str] = {}
        for attr in record.attrib:
            local = etree.QName(attr).localname
            fields.setdefault(local, f"@{local}")
        for child in record:
            if isinstance(child.tag, str):
                q = etree.QName(child)
                prefix = next(
                    (
                        p
                        for p, u in (self.splitter.prolog.namespaces.items() if self.splitter.prolog else [])
                        if u == q.namespace and p
                    ),
                    "",
                )
                fields.setdefault(q.localname, f"{prefix}:{q.localname}" if prefix else q.localname)
        return fields

    def prepare(self, block: Block) -> bool:
        """Set up from the first block (the fast lane, the fields); whether the fields are known, so
        that the blocks, the first among them, can be read in any order."""
        with self._lock:
            if self.parser is None:
                self._setup()
            if self.lane is None and self.try_lane:
                self._build_lane(block)
            return self.fields is not None

    def read(self, block: Block) -> pa.RecordBatch:
        """One block as a batch. Called from several threads: the fast lane runs in parallel, the lxml
        way (and any change of the reader's state) one block at a time."""
        lane = self.lane
        if lane is None and self.try_lane:
            self.prepare(block)
            lane = self.lane
        if lane is not None:
            done = lane.read(block)
            if done is not None:
                columns, lines = done
                return self._batch(dict(zip(lane.names, columns, strict=True)), lines, None)
        with self._lock:
            if self.parser is None:
                self._setup()
            return self._parse(block)

    def _parse(self, block: Block) -> pa.RecordBatch:
        """The lxml way: the block parsed in one go, or record by record when it does not parse."""
        try:
            root = etree.fromstring(self._wrap(block.data), self.parser)
        except etree.XMLSyntaxError:
            return self._one_by_one(block)
        records = root.xpath(self.record_xpath, namespaces=self.ns)
        starts = self.splitter.record_starts(block)
        if len(records) != len(starts):
            return self._one_by_one(block)
        if not records:
            return self._batch({}, [], [])
        if self.fields is None:
            self.fields = self._discover(records[0])
        if self.lane is not None and self.lane_rebuilds < 3:  # the lane missed: learn this block's layout
            self.lane_rebuilds += 1
            self.lane = FastLane.build(self.config.tag, records[:_LANE_SAMPLE], self.fields) or self.lane
        errors: list[str | None] = [None] * len(records)
        if self.xsd is not None:
            for i, r in enumerate(records):
                if not self.xsd.validate(r):
                    errors[i] = (
                        f"line {_line(block, starts[i])}: XSD: {self.xsd.error_log.last_error.message}"
                    )
        columns = {name: self._column(root, records, path) for name, path in self.fields.items()}
        if any(errors):
            for values in columns.values():
                for i, e in enumerate(errors):
                    if e:
                        values[i] = None
        return self._batch(columns, _lines(block, starts), errors)

    def _build_lane(self, block: Block) -> None:
        self.try_lane = False
        prolog = self.splitter.prolog
        if self.xsd is not None or (prolog and (prolog.encoding or "utf-8").lower() not in ("utf-8", "utf8")):
            return
        starts = self.splitter.record_starts(block, _LANE_SAMPLE + 1)
        sample = block.data[: starts[_LANE_SAMPLE]] if len(starts) > _LANE_SAMPLE else block.data
        try:
            root = etree.fromstring(self._wrap(sample), self.parser)
        except etree.XMLSyntaxError:
            self.try_lane = True  # decide on a later block
            return
        records = root.xpath(self.record_xpath, namespaces=self.ns)
        if not records:
            self.try_lane = True
            return
        if self.fields is None:
            self.fields = self._discover(records[0])
        self.lane = FastLane.build(self.config.tag, records[:_LANE_SAMPLE], self.fields)

    def _column(self, root: etree._Element, records: list[etree._Element], path: str) -> list[Any]:
        rec, n = self.record_xpath, len(records)
        q = self._qualify(path)
        if q.rsplit("/", 1)[-1].startswith("@"):
            if root.xpath(f"count({rec}[count({q}) != 1])", namespaces=self.ns) == 0:
                values = root.xpath(f"{rec}/{q}", namespaces=self.ns, smart_strings=False)
                if len(values) == n:
                    return list(values)
            return [_first(r.xpath(q, namespaces=self.ns, smart_strings=False)) for r in records]
        if (
            root.xpath(
                f"count({rec}[count({q}) != 1 or count({q}/text()) != 1 or count({q}/*) != 0])",
                namespaces=self.ns,
            )
            == 0
        ):
            values = root.xpath(f"{rec}/{q}/text()", namespaces=self.ns, smart_strings=False)
            if len(values) == n:
                return list(values)
        return [_text(r.xpath(q, namespaces=self.ns)) for r in records]

    def _one_by_one(self, block: Block) -> pa.RecordBatch:
        """A block that does not parse: each record alone; the broken ones become error rows."""
        good: list[tuple[int, etree._Element]] = []
        bad: list[tuple[int, str]] = []
        for line, data in self.splitter.records(block):
            try:
                wrapper = etree.fromstring(self._wrap(data), self.parser)
                element = wrapper[0]
            except etree.XMLSyntaxError as exc:
                where = line + max(0, (exc.lineno or 1) - 1)
                msg = _LINE.sub(lambda m, base=line: f"line {base + int(m.group(1)) - 1}", exc.msg or "")
                bad.append((line, f"line {where}: malformed XML: {msg}"))
                continue
            except IndexError:
                bad.append((line, f"line {line}: empty record"))
                continue
            if self.xsd is not None and not self.xsd.validate(element):
                bad.append((line, f"line {line}: XSD: {self.xsd.error_log.last_error.message}"))
                continue
            good.append((line, element))
        if self.fields is None and good:
            self.fields = self._discover(good[0][1])
        fields = self.fields or {}
        columns: dict[str, list[Any]] = {name: [] for name in fields}
        lines: list[int] = []
        errors: list[str | None] = []
        for line, element in good:
            for name, path in fields.items():
                q = self._qualify(path)
                found = element.xpath(q, namespaces=self.ns, smart_strings=False)
                columns[name].append(_first(found) if q.rsplit("/", 1)[-1].startswith("@") else _text(found))
            lines.append(line)
            errors.append(None)
        for line, message in bad:
            for values in columns.values():
                values.append(None)
            lines.append(line)
            errors.append(message)
        order = np.argsort(np.asarray(lines, dtype=np.int64), kind="stable").tolist() if lines else []
        columns = {k: [v[i] for i in order] for k, v in columns.items()}
        return self._batch(columns, [lines[i] for i in order], [errors[i] for i in order])

    def _batch(
        self,
        columns: dict[str, list[Any]] | dict[str, pa.Array],
        lines: list[int] | npt.NDArray[np.int64],
        errors: list[str | None] | None,
    ) -> pa.RecordBatch:
        names = list(columns)
        arrays = [v if isinstance(v, pa.Array) else pa.array(v, type=pa.string()) for v in columns.values()]
        n = len(lines)
        names += [ROW_COLUMN, SOURCE_COLUMN, ERROR_COLUMN]
        arrays += [
            pa.array(lines, type=pa.int64()),
            pa.repeat(self.source, n) if n else pa.array([], type=pa.string()),
            pa.array(errors, type=pa.string()) if errors is not None else pa.nulls(n, type=pa.string()),
        ]
        return pa.RecordBatch.from_arrays(arrays, names=names)


_ELEMENT = re.compile(rb"<([A-Za-z_][\w.:-]*)")


def _no_records(path: Path, tag: str) -> SourceDataError:
    """The error of a non-empty file without a ``<tag>`` element: what the file holds instead."""
    head = head_of(path).removeprefix(b"\xef\xbb\xbf")
    body = head.lstrip()
    if not body:
        return SourceDataError(f"no <{tag}> element: the file holds only white space", file=path.name)
    if not body.startswith(b"<"):
        shown = body[:16].hex(" ")
        line = head.count(b"\n", 0, len(head) - len(body)) + 1
        return SourceDataError(
            f"not XML: no <{tag}> element, and the file starts with bytes {shown} instead of a tag",
            file=path.name,
            line=line,
        )
    names = list(dict.fromkeys(m.group(1).decode("utf-8", "replace") for m in _ELEMENT.finditer(head)))
    found = ", ".join(f"<{n}>" for n in names[:8]) + (", ..." if len(names) > 8 else "")
    return SourceDataError(
        f"no <{tag}> element found (the record tag of the config); the file begins with "
        f"{found or 'no element'}. Was the record tag renamed at the source? Set record: to the tag as "
        "written in the file (with its prefix)",
        file=path.name,
    )


def _lines(block: Block, starts: list[int]) -> list[int]:
    return (block.line + np.searchsorted(block.newlines, np.asarray(starts, dtype=np.int64))).tolist()  # type: ignore[no-any-return]


def _line(block: Block, offset: int) -> int:
    return block.line + int(np.searchsorted(block.newlines, offset))


def _first(values: list[Any]) -> str | None:
    return str(values[0]) if values else None


def _text(found: list[Any]) -> str | None:
    if not found:
        return None
    element = found[0]
    if isinstance(element, str):
        return element
    return "".join(element.itertext()) if len(element) or element.text is not None else None
