"""Reading contract files and resolving ``$ref`` within ``schemas/``.

A contract is a JSON Schema 2020-12 file ``schemas/<domain>/<dataset>.v<MAJOR>.schema.json``. Its ``$id``
(when given) must end with that relative path; the part before it is the base of every schema of the hub,
so ``../common/vn.v1.schema.json`` resolves to ``schemas/common/vn.v1.schema.json``. A ``$ref`` that points
outside ``schemas/``, to a missing file or to a missing pointer is refused with the file and the pointer
of the ``$ref``. Only JSON-pointer fragments are supported (no ``$anchor``/``$dynamicRef``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from hub.errors import ContractError

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def escape(token: str) -> str:
    """Escape one JSON pointer token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def pointer_of(parts: Any) -> str:
    return "".join("/" + escape(str(p)) for p in parts)


@dataclass
class Document:
    uri: str
    path: Path
    contents: dict[str, Any]


@dataclass
class SchemaStore:
    """The schema files a contract uses, by URI; builds the registry for the ``jsonschema`` fallback."""

    schemas_dir: Path
    prefix: str | None = None  # URI prefix that maps onto schemas_dir (from the root's $id)
    docs: dict[str, Document] = field(default_factory=dict)

    def display(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.schemas_dir.parent))
        except ValueError:
            return str(path)

    def read(self, path: Path, uri: str | None = None) -> Document:
        shown = self.display(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ContractError("file not found", file=shown, pointer="") from None
        try:
            contents = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(
                f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}", file=shown, pointer=""
            ) from None
        if not isinstance(contents, dict):
            raise ContractError("a schema file must hold a JSON object", file=shown, pointer="")
        declared = contents.get("$schema")
        if declared is not None and declared.rstrip("#") != DRAFT_2020_12:
            raise ContractError(
                f"only JSON Schema 2020-12 is supported ($schema {declared!r})",
                file=shown,
                pointer="/$schema",
            )
        errors = sorted(
            Draft202012Validator(Draft202012Validator.META_SCHEMA).iter_errors(contents),
            key=lambda e: (len(e.path), list(map(str, e.path))),
        )
        if errors:
            err = errors[0]
            raise ContractError(
                f"not a valid JSON Schema: {err.message}", file=shown, pointer=pointer_of(err.path)
            )
        doc = Document(uri or path.resolve().as_uri(), path, contents)
        self.docs[doc.uri] = doc
        return doc

    def document(self, uri: str, *, file: str, pointer: str) -> Document:
        """The document at ``uri`` (no fragment), loading it from schemas/ if needed."""
        if uri in self.docs:
            return self.docs[uri]
        rel: str | None = None
        if self.prefix and uri.startswith(self.prefix):
            rel = unquote(uri[len(self.prefix) :])
        elif uri.startswith("file:"):
            target = Path(unquote(uri[len("file://") :]))
            try:
                rel = str(target.resolve().relative_to(self.schemas_dir.resolve()))
            except ValueError:
                rel = None
        if rel is None:
            raise ContractError(f"$ref {uri!r} points outside schemas/", file=file, pointer=pointer)
        target = (self.schemas_dir / rel).resolve()
        if not target.is_relative_to(self.schemas_dir.resolve()) or not target.is_file():
            raise ContractError(
                f"$ref target {rel!r} does not exist under schemas/", file=file, pointer=pointer
            )
        doc = self.read(target, uri)
        declared = doc.contents.get("$id")
        if declared is not None and declared != uri:
            raise ContractError(
                f"$id {declared!r} differs from the URI it is referenced by ({uri!r})",
                file=self.display(target),
                pointer="/$id",
            )
        return doc

    def resolve(self, base_uri: str, ref: str, *, file: str, pointer: str) -> tuple[Document, str, Any]:
        """Resolve ``ref`` against ``base_uri``: (document, JSON pointer in it, the schema there)."""
        target = urljoin(base_uri, ref)
        doc_uri, fragment = urldefrag(target)
        if fragment and not fragment.startswith("/"):
            raise ContractError(
                f"$ref {ref!r}: only JSON-pointer fragments are supported, not anchors",
                file=file,
                pointer=pointer,
            )
        doc = self.document(doc_uri, file=file, pointer=pointer)
        node: Any = doc.contents
        frag = unquote(fragment)
        for token in frag.split("/")[1:] if frag else []:
            key = _unescape(token)
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise ContractError(
                    f"$ref {ref!r}: no {frag!r} in {self.display(doc.path)}", file=file, pointer=pointer
                )
        return doc, frag, node

    def registry(self) -> Registry:
        resources = [(uri, DRAFT202012.create_resource(d.contents)) for uri, d in self.docs.items()]
        return Registry().with_resources(resources)
