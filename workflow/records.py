"""The JSON documents of applications and events (SPEC §8), built once for every edge.

``status --json``, ``show --json`` and ``log --json`` print these, and the web API
(``/api/applications``, ``/api/applications/{ref}``, ``/api/log``) returns them: one
builder each, so the two edges cannot drift apart. The keys are a contract: add
keys, never rename them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the store imports SQLModel; these builders only read its rows
    from workflow.store import Application, EventRow, Store


def summary_json(row: Application) -> dict[str, Any]:
    """One line of ``status --json``."""
    return {
        "reference": row.reference,
        "state": row.state,
        "org_name": row.org_name,
        "country": row.country,
        "received_at": row.received_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def event_json(row: EventRow) -> dict[str, Any]:
    """One event of ``log --json`` (and of ``show --json``'s ``events``)."""
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "reference": row.reference,
        "actor": row.actor,
        "kind": row.kind,
        "from_state": row.from_state,
        "to_state": row.to_state,
        "reason": row.reason,
        "data": row.data,
        "hash": row.hash,
    }


def application_json(store: Store, row: Application) -> dict[str, Any]:
    """``show --json``: the summary plus fields, findings, documents, events and reports."""
    assert row.id is not None and row.reference is not None
    return summary_json(row) | {
        "lang": row.lang,
        "fields": row.fields,
        "problems": row.problems,
        "findings": row.findings,
        "issued_sha256": row.issued_sha256,
        "documents": [
            {
                "kind": doc.kind,
                "sha256": doc.sha256,
                "size": doc.size,
                "original_name": doc.original_name,
                "created_at": doc.created_at.isoformat(),
            }
            for doc in store.documents(row.id)
        ],
        "events": [event_json(event) for event in store.events(reference=row.reference)],
        "signature_reports": [
            {
                "sha256": rep.sha256,
                "accepted": rep.accepted,
                "created_at": rep.created_at.isoformat(),
            }
            | rep.report
            for rep in store.signature_reports(row.id)
        ],
    }
