"""pyHanko's private functions that workflow.verification relies on, pinned loudly.

They live in one module (workflow/verification/pdf.py). A pyHanko upgrade that renames
them, changes their parameters, or makes the public report differ from what they build
fails here with the name of what changed, instead of silently losing the ETSI report.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver
from pyhanko.sign.validation import ades, generic_cms
from pyhanko.sign.validation.report import tools

from workflow import verification

PRIVATE: dict[str, tuple[Any, list[str]]] = {
    "_generate_report": (tools, ["embedded_sig", "status"]),
    "_package_validation_object": (tools, ["vo"]),
    "_enumerate_validation_objects": (ades, ["validation_context"]),
    "_enumerate_certs_in_paths": (ades, ["status"]),
    "_decode_name": (generic, ["name_bytes"]),  # replaced by a faster one (pdf._decode_name)
    # what pdf._read_dictionary leaves to pyHanko after a dictionary: a stream's data
    "_maybe_read_stream_payload": (generic, ["stream", "data", "handler"]),
    # replaced by a faster one (pdf._subsume) for plain values, called for the rest
    "_subsume_object": (HistoricalResolver, ["self", "obj"]),
    # replaced for the issued revision of a bound consent (pdf._paths_to, a copy of the
    # reverse index's walk that enters fewer objects: tests/test_pdf_tokens.py holds its
    # answers to pyHanko's), called for every other revision
    "_get_usages_of_ref": (HistoricalResolver, ["self", "ref"]),
    "_load_reverse_xref_cache": (HistoricalResolver, ["self"]),
    # replaced by one that keeps its matches (pdf._check_signing_certificate)
    "_check_signing_certificate": (generic_cms, ["cert", "signed_attrs"]),
}
PACKAGE = Path(verification.__file__).parent


def test_private_functions_keep_their_names_and_parameters() -> None:
    for name, (module, parameters) in PRIVATE.items():
        function = getattr(module, name, None)
        assert function is not None, f"pyHanko no longer has {module.__name__}.{name}"
        got = list(inspect.signature(function).parameters)
        assert got == parameters, f"pyHanko's {name} now takes {got}, not {parameters}"


def test_public_report_is_still_made_of_them() -> None:
    """generate_report still calls the two private functions our fast copy calls, and the
    AdES engine still lists its validation objects with the two our report uses."""
    report = inspect.getsource(tools.generate_report)
    engine = inspect.getsource(ades)
    for name, (module, _) in PRIVATE.items():
        if module not in (tools, ades):
            continue  # replaced: tests/test_pdf_tokens.py pins how
        source = report if module is tools else engine
        assert name in source, f"pyHanko no longer uses {name}: re-check pdf.etsi_xml"


def test_private_names_are_used_in_one_module_only() -> None:
    """Every ``_name`` of pyhanko's that the package imports, or reads from a pyhanko
    module it imported, is used in pdf.py only."""
    users: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyhanko"):
                for alias in node.names:
                    modules.add(alias.asname or alias.name)
                    if alias.name.startswith("_"):
                        users.setdefault(alias.name, set()).add(path.name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and node.attr.startswith("_")
            ):
                users.setdefault(node.attr, set()).add(path.name)
    assert users == {name: {"pdf.py"} for name in PRIVATE}


def test_xref_cache_still_tells_where_each_revision_ends() -> None:
    """Binding finds revisions from pyHanko's xref cache, internal API (pdf.xref_section_ends)."""
    from dataclasses import fields

    from pyhanko.pdf_utils.xref import XRefCache, XRefSectionMetaInfo

    assert callable(getattr(XRefCache, "get_xref_container_info", None))
    assert "end_location" in {f.name for f in fields(XRefSectionMetaInfo)}


def test_the_reader_caches_that_release_empties_are_still_there() -> None:
    """pdf.release empties a reader's caches by their private names: a renamed cache
    would quietly stay full (and its file wait for the garbage collector)."""
    from io import BytesIO

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import PdfFileWriter

    from workflow.verification import pdf

    out = BytesIO()
    writer: Any = PdfFileWriter
    writer().write(out)
    reader = PdfFileReader(BytesIO(out.getvalue()))
    view = reader.get_historical_resolver(0)
    view(reader.root_ref)
    load: Any = view._load_reverse_xref_cache  # (untyped)
    load()
    assert reader._historical_resolver_cache == {0: view}
    assert view.cache and reader.resolved_objects and view._indirect_object_access_cache
    assert hasattr(reader, "_embedded_signatures")
    pdf.release(reader)
    assert not (view.cache or reader.resolved_objects or reader._historical_resolver_cache)
    assert view._indirect_object_access_cache is None
    assert reader._embedded_signatures is None
