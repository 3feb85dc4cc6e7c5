"""``consentflow audit verify``: the keyed chain, and the records that must agree with it.

The chain (:meth:`workflow.store.Store.verify_chain`) proves that the events were
written by a holder of the audit key and that none was edited, inserted or removed
from the end. The rest of the database is not chained, so this also checks that it
agrees with the events (SPEC §9):

- every application has its events, and they form one unbroken path of states;
- its state is the one its events lead to; its EOI, issued consent and signed copy
  are the documents its events name;
- every document is in ``archive/`` with its SHA-256 and size, and the documents an
  application names are recorded.

Each disagreement is one :class:`Problem`, with a stable code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflow.store import AuditResult, Store, sha256_file


@dataclass(frozen=True)
class Problem:
    """One disagreement between the records and the events, or with ``archive/``."""

    code: str
    reference: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        """``{"code", "reference", "message"}``."""
        return {"code": self.code, "reference": self.reference, "message": self.message}


@dataclass(frozen=True)
class AuditReport:
    """Everything ``audit verify`` found."""

    chain: AuditResult
    key_id: str
    applications: int
    documents: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the chain is intact and everything agrees with it."""
        return self.chain.ok and not self.problems

    def to_json(self) -> dict[str, Any]:
        """The JSON document of ``audit verify --json`` (``ok``, ``events``, ``bad_event``
        and ``problem`` as before; ``problems`` lists every disagreement found)."""
        return {
            "ok": self.ok,
            "events": self.chain.events,
            "bad_event": self.chain.bad_event_id,
            "problem": self.chain.problem,
            "chain_ok": self.chain.ok,
            "key_id": self.key_id,
            "applications": self.applications,
            "documents": self.documents,
            "problems": [problem.to_json() for problem in self.problems],
        }


@dataclass
class _History:
    """What one application's state events say."""

    state: str | None = None  # the state the last event leads to
    eoi: str | None = None
    issued: str | None = None
    signed: str | None = None
    broken: str = ""  # the first transition that does not follow from the one before


def audit(store: Store, archive: Path) -> AuditReport:
    """Verify the chain, then every application and document against it."""
    chain = store.verify_chain()
    assert store.audit_key is not None  # verify_chain raised otherwise
    histories = _histories(store)
    problems: list[Problem] = []
    named: dict[str, str] = {}  # SHA-256 -> reference, of every document an application names
    applications = 0
    for reference, state, eoi, issued, signed in store.application_hashes():
        applications += 1
        problems.extend(_application_problems(reference, state, histories.pop(reference, None),
                                              eoi=eoi, issued=issued, signed=signed))  # fmt: skip
        for sha in (eoi, issued, signed):
            if sha:
                named[sha] = reference
    for reference in histories:
        problems.append(
            Problem(
                "application_missing",
                reference,
                f"{reference} has state events but no application row: the row was deleted",
            )
        )
    documents = 0
    for sha, kind, size in store.document_facts():
        documents += 1
        named.pop(sha, None)
        problem = _document_problem(archive, sha, kind, size)
        if problem is not None:
            problems.append(problem)
    for sha, reference in named.items():
        problems.append(
            Problem(
                "document_unrecorded",
                reference,
                f"{reference} names the document {sha}, which is not recorded",
            )
        )
    return AuditReport(chain, store.audit_key.key_id, applications, documents, problems)


def _histories(store: Store) -> dict[str, _History]:
    histories: dict[str, _History] = {}
    for reference, kind, old, new, data in store.state_events():
        history = histories.setdefault(reference, _History())
        sha = data.get("sha256")
        if new is None:  # a reissue: the newest consent, the state unchanged
            history.issued = sha if isinstance(sha, str) else history.issued
            continue
        if old != history.state and not history.broken:
            history.broken = (
                f"an event moves it from {old or 'nothing'} to {new}, but the events before "
                f"leave it {history.state or 'without a state'} (events were removed)"
            )
        history.state = new
        if not isinstance(sha, str):
            continue
        if kind == "received" and old is None:
            history.eoi = sha
        elif new == "consent_issued":
            history.issued = sha  # the newest issue (a reissue replaces it)
        elif new == "signed":
            history.signed = sha
    return histories


def _application_problems(
    reference: str,
    state: str,
    history: _History | None,
    *,
    eoi: str,
    issued: str | None,
    signed: str | None,
) -> Iterator[Problem]:
    if history is None:
        yield Problem(
            "events_missing",
            reference,
            f"{reference} ({state}) has no events: its history was deleted",
        )
        return
    if history.broken:
        yield Problem("history_broken", reference, f"{reference}: {history.broken}")
    if history.state != state:
        yield Problem(
            "state_mismatch",
            reference,
            f"{reference} is {state} in the database, but its events lead to {history.state}",
        )
    for code, what, recorded, evidenced in (
        ("eoi_mismatch", "EOI", eoi, history.eoi),
        ("issued_mismatch", "issued consent", issued, history.issued),
        ("signed_mismatch", "signed consent", signed, history.signed),
    ):
        if (recorded or None) != evidenced:
            yield Problem(
                code,
                reference,
                f"{reference}'s {what} is {recorded or 'none'} in the database, but its "
                f"events name {evidenced or 'none'}",
            )


def _document_problem(archive: Path, sha: str, kind: str, size: int) -> Problem | None:
    path = archive / sha[:2] / sha
    try:
        actual_size = path.stat().st_size
        actual = sha256_file(path)
    except FileNotFoundError:
        return Problem(
            "document_missing", None, f"the {kind} {sha} is not in archive/ ({path} is gone)"
        )
    except OSError as exc:
        return Problem("document_unreadable", None, f"the {kind} {sha} cannot be read: {exc}")
    if actual != sha or actual_size != size:
        return Problem(
            "document_altered",
            None,
            f"the {kind} {sha} in archive/ was changed: its bytes now hash to {actual} "
            f"({actual_size} bytes, {size} recorded)",
        )
    return None
