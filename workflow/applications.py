"""What happens to an application: receiving an EOI, the office's decision, issuing the consent.

Expensive work (reading the PDF, validating, rendering the consent) happens outside
database transactions; each transaction is short and re-checks the state it acts on
under a row lock, so two workers or an office user and a worker can never issue the
same consent twice. Files are made durable before the row that names them commits, and a
consent enters the archive only once its decision is won (`Archive.draft`), so every file
there belongs to a record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forms.consent import render_consent
from forms.eoi import COMMITMENTS, EOI, Lang
from forms.errors import UnusableDocument
from forms.findings import eligibility_findings
from forms.reading import read_eoi
from forms.validation import validate
from workflow.archive import Access, Archive, Draft, write_atomic
from workflow.config import Settings
from workflow.failed import FailedFolder
from workflow.intake import Claimed, PermanentError
from workflow.signature_report import IssuedConsent, SignatureReport
from workflow.states import Actor, DecisionError, State, TransitionError, check_transition
from workflow.store import Application, IntakeItem, KnownDocument, Store, Tx, org_key
from workflow.verification import Verifier

#: Seals (certifies) issued consent bytes; ``None`` when no office seal is configured.
Sealer = Callable[[bytes], bytes]

#: A consent draft this old belongs to no running issuer (an issue takes well under a
#: second; this leaves room for any transaction's wait).
DRAFT_MAX_AGE_S = 3600.0


@dataclass(frozen=True)
class Issued:
    """A consent just issued."""

    reference: str
    sha256: str
    length: int
    path: Path


class Applications:
    """The application services; one per process, shared by intake and CLI."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        sealer: Sealer | None = None,
        verifier: Verifier | None = None,
        log: logging.Logger | None = None,
        clock: Callable[[], datetime] | None = None,
        seal_sha256: str | None = None,
    ) -> None:
        """``seal_sha256``: the SHA-256 of ``sealer``'s certificate, recorded per consent."""
        self.store = store
        self.settings = settings
        self.archive = Archive(settings.archive, Access(settings.files.gid_for("archive")))
        self.outbox_access = Access(settings.files.gid_for("outbox"))
        self.sealer = sealer
        self.seal_sha256 = seal_sha256 if sealer is not None else None
        self.verifier = verifier
        self.log = log or logging.getLogger("consentflow.applications")
        self.clock = clock or (lambda: datetime.now(UTC))
        self._unrestorable: set[str] = set()

    # -- intake of an EOI ---------------------------------------------------------------

    def receive_eoi(self, claimed: Claimed) -> str:
        """Processor for ``inbox/``: record an application (or a duplicate) from a claimed file."""
        data, sha256 = claimed.data, claimed.sha256
        fields: dict[str, Any] = {}
        problems: list[dict[str, str]] = []
        eoi: EOI | None = None
        lang = Lang.EN
        if self.store.known_document(sha256) is None:
            try:
                raw = read_eoi(data, max_bytes=int(self.settings.intake.max_file_mb * 1024 * 1024))
            except UnusableDocument as exc:
                raise PermanentError(str(exc.code), exc.message, exc.detail) from exc
            lang = raw.lang
            validation = validate(raw.values, lang=lang, today=self.clock().date())
            fields = dict(validation.fields)
            problems = [problem.to_json() for problem in validation.problems]
            eoi = validation.eoi
            if eoi is not None:
                fields.update(eoi.to_fields())
        self.archive.put(data, sha256=sha256)

        with self.store.tx() as tx:
            item = tx.get_item(claimed.item_id)
            if item is None or item.status != "claimed":
                # Recorded by an earlier attempt: ours, cut short by a transient error after
                # its commit, or another worker's after our lease lapsed.
                if item is None or item.status != "done" or not item.outcome:
                    return f"already {item.status if item else 'gone'}"
                app = tx.get_application(item.outcome, lock=False)
                if app is None:
                    return f"already done ({item.outcome})"
            else:
                known = tx.find_document(sha256)
                if known is not None:
                    return self._duplicate(tx, claimed, known, sha256)
                app = self._record_eoi(
                    tx, item, claimed, data=data, sha256=sha256, fields=fields,
                    problems=problems, eoi=eoi, lang=lang,
                )  # fmt: skip
        return f"{app.reference} {self.complete(app)}"

    def _record_eoi(
        self,
        tx: Tx,
        item: IntakeItem,
        claimed: Claimed,
        *,
        data: bytes,
        sha256: str,
        fields: dict[str, Any],
        problems: list[dict[str, str]],
        eoi: EOI | None,
        lang: Lang,
    ) -> Application:
        """Record a new application from a claimed EOI and finish its ledger row."""
        org_name = str(fields.get("org_name") or "")
        country = str(fields.get("country") or "")
        app = tx.new_application(
            state=State.RECEIVED,
            eoi_sha256=sha256,
            org_name=org_name,
            org_key=org_key(org_name, country),
            country=country,
            lang=lang.value,
            fields=fields,
            problems=problems,
        )
        assert app.reference is not None and app.id is not None
        tx.add_document(
            sha256=sha256,
            kind="eoi",
            size=len(data),
            original_name=claimed.original_name,
            application_id=app.id,
        )
        tx.append_event(
            "received",
            actor=Actor.SYSTEM,
            reference=app.reference,
            to_state=State.RECEIVED,
            reason=f"EOI received as {claimed.original_name}",
            data={"file": claimed.original_name, "sha256": sha256, "size": len(data)},
        )
        if eoi is None:
            tx.move(
                app,
                State.INVALID,
                actor=Actor.SYSTEM,
                reason=f"{len(problems)} problem(s) in the form",
                data={"problems": problems},
            )
        else:
            findings = eligibility_findings(
                eoi,
                eligible_countries=self.settings.review.eligible_countries,
                open_application=tx.open_application(app.org_key, exclude_id=app.id),
            )
            app.findings = [finding.to_json() for finding in findings]
            tx.move(
                app,
                State.AWAITING_REVIEW,
                actor=Actor.SYSTEM,
                reason=(
                    f"{len(findings)} finding(s) for the office"
                    if findings
                    else "valid, no eligibility findings"
                ),
                data={"findings": app.findings},
            )
        tx.finish_item(item, status="done", outcome=app.reference, sha256=sha256)
        return app

    def complete(self, app: Application) -> str:
        """Do what follows a recorded application and return its state: with ``review =
        "auto"`` and no findings, issue the consent; an issued consent missing from
        ``outbox/`` is placed there. Raises what a transient failure raises (``OSError``,
        database errors), so that the file that brought it stays claimed and is retried."""
        reference = app.reference
        assert reference is not None
        state = State(app.state)
        if (
            state is State.AWAITING_REVIEW
            and not app.findings
            and self.settings.review.mode == "auto"
        ):
            try:
                self._issue(app, actor=Actor.SYSTEM, reason='review = "auto": no findings')
            except TransitionError:
                return "consent_issued (by another worker)"
            return State.CONSENT_ISSUED.value
        issued = app.issued_sha256
        outbox_copy = self.settings.outbox / f"{reference}.pdf"
        if state is State.CONSENT_ISSUED and issued is not None and not outbox_copy.exists():
            self.place_in_outbox(reference, self.archive.get(issued))
        return state.value

    @staticmethod
    def _duplicate(tx: Tx, claimed: Claimed, known: KnownDocument, sha256: str) -> str:
        """Record a file whose exact bytes were received before; finish its ledger row."""
        item = tx.get_item(claimed.item_id)
        assert item is not None
        original = tx.application_by_id(known.application_id) if known.application_id else None
        duplicate_of = (original.reference if original else None) or known.sha256[:12]
        tx.append_event(
            "duplicate",
            actor=Actor.SYSTEM,
            reference=duplicate_of,
            reason=f"the same file was received again as {claimed.original_name}",
            data={"file": claimed.original_name, "sha256": sha256, "folder": claimed.folder},
        )
        tx.finish_item(item, status="duplicate", outcome=duplicate_of, sha256=sha256)
        return f"duplicate of {duplicate_of}"

    # -- the Commission's signature -------------------------------------------------------

    def issued_lookup(self, sha256: str) -> IssuedConsent | None:
        """The issued consent whose exact bytes have this SHA-256 (binding, SPEC §7 rule 1)."""
        record = self.store.issued_record(sha256)
        if record is None:
            return None
        reference, seal, superseded = record
        return IssuedConsent(
            reference, sha256, self.archive.get(sha256), superseded=superseded, seal_sha256=seal
        )

    def verify(self, data: bytes, *, unrecorded: str | None = None) -> SignatureReport:
        """Verify a signed consent against the issued consents, recording nothing.

        ``unrecorded``: the SHA-256 of ``data`` when the caller has just read that no
        document has these bytes; binding then does not ask the store about them again.
        """
        if self.verifier is None:
            raise DecisionError("signature verification is not configured")

        def lookup(sha256: str) -> IssuedConsent | None:
            # No document with these bytes: no consent was issued with them either.
            return None if sha256 == unrecorded else self.issued_lookup(sha256)

        return self.verifier.verify_sync(data, lookup)

    def receive_signed(self, claimed: Claimed) -> str:
        """Processor for ``signed/``: verify; a match makes the application ``signed``.

        A rejected file is recorded as an attempt (report and event) on the application
        it names, which stays ``consent_issued``, and goes to ``failed/`` with its report.
        """
        data, sha256 = claimed.data, claimed.sha256
        known = self.store.known_document(sha256)
        if known is not None and known.kind == "eoi":
            raise _wrong_folder(self._reference_of(known))
        # The issued consent itself is verified (and refused as unsigned, recorded on its
        # application); a signed copy received again is a duplicate.
        if known is not None and known.kind != "consent":
            with self.store.tx() as tx:
                return self._duplicate(tx, claimed, known, sha256)
        report = self.verify(data, unrecorded=sha256 if known is None else None)
        if not report.accepted and report.reference is None and _reads_as_eoi(data):
            raise _wrong_folder(None)
        self.archive.put(data, sha256=sha256)
        report_json = report.to_json()
        evidence = report_json.pop("etsi_report_xml", None)
        failed = [check for check in report.checks if not check.ok]
        with self.store.tx() as tx:
            status = tx.item_status(claimed.item_id)
            if status != "claimed":
                return f"already {status or 'gone'}"
            app = tx.get_application(report.reference) if report.reference else None
            if report.accepted and app is not None and app.state == State.CONSENT_ISSUED:
                assert app.id is not None
                tx.add_document(
                    sha256=sha256,
                    kind="signed",
                    size=len(data),
                    original_name=claimed.original_name,
                    application_id=app.id,
                )
                tx.add_signature_report(
                    application_id=app.id,
                    sha256=sha256,
                    accepted=True,
                    report=report_json,
                    etsi_report_xml=evidence if isinstance(evidence, str) else None,
                )
                app.signed_sha256 = sha256
                tx.move(
                    app,
                    State.SIGNED,
                    actor=Actor.COMMISSION,
                    reason=f"signed by {report.signer_subject}",
                    data={
                        "sha256": sha256,
                        "signer": report.signer_subject,
                        "signer_sha256": report.signer_sha256,
                        "indication": report.indication,
                        "file": claimed.original_name,
                    },
                )
                tx.finish(claimed.item_id, status="done", outcome=app.reference, sha256=sha256)
                return f"{app.reference} signed by {report.signer_subject}"
            if report.accepted and app is not None:
                reason = f"{app.reference} is already {app.state}; this signed copy changes nothing"
                code = "already_signed"
            else:
                reason = failed[0].message if failed else "the signature was not accepted"
                code = failed[0].code if failed else "rejected"
            if not tx.has_signature_report(sha256):
                tx.add_signature_report(
                    application_id=app.id if app is not None else None,
                    sha256=sha256,
                    accepted=False,
                    report=report_json,
                    etsi_report_xml=evidence if isinstance(evidence, str) else None,
                )
                tx.append_event(
                    "signature_rejected",
                    actor=Actor.SYSTEM,
                    reference=app.reference if app is not None else None,
                    reason=reason,
                    data={
                        "file": claimed.original_name,
                        "sha256": sha256,
                        "failed_checks": [check.code for check in failed],
                        "indication": report.indication,
                        "subindication": report.subindication,
                    },
                )
        raise PermanentError(
            code,
            f"The signed consent was not accepted: {reason}",
            "; ".join(f"{check.code}: {check.message}" for check in failed),
            {"report": report_json},
        )

    def _reference_of(self, known: KnownDocument) -> str | None:
        if known.application_id is None:
            return None
        with self.store.tx() as tx:
            app = tx.application_by_id(known.application_id)
            return app.reference if app is not None else None

    # -- the office's decisions ---------------------------------------------------------

    def retry(self, names: Sequence[str], *, actor: str) -> list[str]:
        """Put files from ``failed/`` back into the folder they came from, each recorded as
        a ``retry`` event; return the names they have there. Raises ``FileNotFoundError``
        for a name that is not a file in ``failed/`` (a link or a report is not one)."""
        moved = FailedFolder(self.settings.failed).retry(
            {"inbox": self.settings.inbox, "signed": self.settings.signed}, names
        )
        with self.store.tx() as tx:
            for name in moved:
                tx.append_event("retry", actor=actor, reason=f"{name} put back for processing")
        return moved

    def approve(self, reference: str, *, actor: str) -> Issued:
        """The office confirms eligibility: issue the consent at once."""
        return self.issue(reference, actor=actor, reason="eligibility confirmed by the office")

    def reject(self, reference: str, *, actor: str, reason: str) -> None:
        """The office finds the applicant ineligible, for a stated reason."""
        if not reason.strip():
            raise DecisionError(
                "a rejection needs a reason (--reason TEXT): the applicant is told it"
            )
        with self.store.tx() as tx:
            app = self._locked(tx, reference)
            tx.move(app, State.INELIGIBLE, actor=actor, reason=reason.strip())

    def issue(self, reference: str, *, actor: str, reason: str) -> Issued:
        """Render, seal, archive and record the consent; then place it in ``outbox/``."""
        app = self.store.application(reference)
        if app is None:
            raise DecisionError(f"no application {reference}")
        return self._issue(app, actor=actor, reason=reason)

    def _render_consent(self, app: Application, reference: str) -> bytes:
        """The consent's bytes for ``app`` now: rendered, and sealed when a seal is set."""
        eoi = EOI.from_fields({**app.fields, "lang": app.lang})
        data = render_consent(eoi, reference=reference, issued_at=self.clock(), lang=Lang(app.lang))
        return self.sealer(data) if self.sealer is not None else data

    def _record_consent(self, tx: Tx, app: Application, draft: Draft, length: int) -> None:
        """Inside the decision's transaction: the draft enters the archive and becomes the
        application's issued consent, a document recorded with the seal it was issued with."""
        assert app.id is not None and app.reference is not None
        self.archive.commit_draft(draft)
        app.issued_sha256 = draft.sha256
        app.issued_length = length
        tx.add_document(
            sha256=draft.sha256,
            kind="consent",
            size=length,
            original_name=f"{app.reference}.pdf",
            application_id=app.id,
            seal_sha256=self.seal_sha256,
        )

    def _issue(self, app: Application, *, actor: str, reason: str) -> Issued:
        # ``app`` as last read; the transaction below re-checks its state under a row lock.
        reference = app.reference
        assert reference is not None
        if app.state != State.AWAITING_REVIEW:
            raise TransitionError(reference, State(app.state), State.CONSENT_ISSUED)
        data = self._render_consent(app, reference)
        # Durable before the row that names it commits, but in the archive only once this
        # decision is won: a lost race (another worker, the office) leaves no file behind.
        draft = self.archive.draft(data)
        sha256 = draft.sha256
        try:
            with self.store.tx() as tx:
                app = self._locked(tx, reference)
                assert app.id is not None
                check_transition(reference, State(app.state), State.CONSENT_ISSUED)
                self._record_consent(tx, app, draft, len(data))
                tx.move(
                    app,
                    State.CONSENT_ISSUED,
                    actor=actor,
                    reason=reason,
                    data={
                        "sha256": sha256,
                        "length": len(data),
                        "sealed": self.sealer is not None,
                        "seal_sha256": self.seal_sha256,
                    },
                )
        except (TransitionError, DecisionError):
            self.archive.discard(draft)  # lost before anything entered the archive
            raise
        # Any other failure keeps the draft: whether its commit happened is for
        # sweep_drafts to find out from the database, once no worker can still be at it.
        self.archive.discard(draft)
        path = self.place_in_outbox(reference, data)
        self.log.info(
            "%s: consent issued (%s, %d bytes) -> %s", reference, sha256[:12], len(data), path
        )
        return Issued(reference, sha256, len(data), path)

    def reissue(self, reference: str, *, actor: str, reason: str) -> Issued:
        """Replace the consent of a ``consent_issued`` application (SPEC §7), for instance
        after the seal or the applicant's data changed: a new consent is rendered, sealed as
        configured now, archived and placed in ``outbox/``; the old one is superseded, and a
        signed copy of it is rejected as ``superseded``."""
        if not reason.strip():
            raise DecisionError("a reissue needs a reason (--reason TEXT): it is recorded")
        app = self.store.application(reference)
        if app is None:
            raise DecisionError(f"no application {reference}")
        if app.state != State.CONSENT_ISSUED:
            raise DecisionError(
                f"{reference} is {app.state}: only a consent_issued application's consent "
                "can be reissued"
            )
        data = self._render_consent(app, reference)
        draft = self.archive.draft(data)
        sha256 = draft.sha256
        try:
            with self.store.tx() as tx:
                app = self._locked(tx, reference)
                assert app.id is not None
                if app.state != State.CONSENT_ISSUED:
                    raise DecisionError(f"{reference} is {app.state}: nothing to reissue")
                old = app.issued_sha256
                if old == sha256:
                    raise DecisionError(f"{reference}: the new consent would be the same bytes")
                self._record_consent(tx, app, draft, len(data))
                tx.append_event(
                    "reissued",
                    actor=actor,
                    reference=reference,
                    reason=reason.strip(),
                    data={
                        "sha256": sha256,
                        "length": len(data),
                        "sealed": self.sealer is not None,
                        "seal_sha256": self.seal_sha256,
                        "superseded": old,
                    },
                )
        except (TransitionError, DecisionError):
            self.archive.discard(draft)
            raise
        self.archive.discard(draft)
        path = self.place_in_outbox(reference, data)
        self.log.info(
            "%s: consent reissued (%s, %d bytes) -> %s", reference, sha256[:12], len(data), path
        )
        return Issued(reference, sha256, len(data), path)

    def place_in_outbox(self, reference: str, data: bytes) -> Path:
        """Write the issued bytes to ``outbox/REF.pdf`` (a copy; the archive is the record)."""
        path = self.settings.outbox / f"{reference}.pdf"
        write_atomic(path, data, self.outbox_access)
        return path

    def warm_up(self) -> None:
        """Load what the first document would otherwise pay for: the country and phone
        tables, the message catalogues and the consent fonts (imports are once per worker)."""
        sample: dict[str, Any] = {
            "org_name": "Warm-up", "org_type": "national_network", "country": "Suomi",
            "address_street": "-", "address_postcode": "-", "address_city": "-",
            "website": "https://example.org", "member_count": "2", "contact_name": "-",
            "contact_position": "-", "contact_email": "a@example.org",
            "contact_phone": "+358 40 1234567", "representative_name": "-",
            "representative_position": "-", "services": "-" * 20,
            "date": self.clock().date().isoformat(), "place": "-",
            **{name: True for name in (*COMMITMENTS, "accept_suspension", "consent_privacy")},
        }  # fmt: skip
        for lang in Lang:
            result = validate(sample, lang=lang, today=self.clock().date())
            assert result.eoi is not None, result.problems
            render_consent(result.eoi, reference="SUP-0000-00000", issued_at=self.clock())

    def restore_outbox(self) -> int:
        """Re-place consents whose outbox copy a crash left unwritten; return how many.

        A consent whose archived bytes are gone is reported (once per process) and the
        others are still restored.
        """
        restored = 0
        for reference, sha256 in self.store.issued_consents():
            path = self.settings.outbox / f"{reference}.pdf"
            if path.exists():
                continue
            try:
                data = self.archive.get(sha256)
            except FileNotFoundError:
                if reference not in self._unrestorable:
                    self._unrestorable.add(reference)
                    self.log.error(
                        "%s: its consent %s is missing from %s; outbox/%s.pdf cannot be "
                        "restored (restore archive/ from a backup)",
                        reference,
                        sha256[:12],
                        self.archive.root,
                        reference,
                    )
                continue
            self.place_in_outbox(reference, data)
            restored += 1
        return restored

    def sweep_drafts(self) -> int:
        """Remove consent drafts (and unrecorded archive entries) a killed issuer left."""
        return self.archive.sweep_drafts(
            older_than_s=DRAFT_MAX_AGE_S,
            recorded=lambda sha256: self.store.known_document(sha256) is not None,
        )

    def issue_pending_auto(self) -> int:
        """With ``review = "auto"``, issue consents a crash left unissued; return how many."""
        if self.settings.review.mode != "auto":
            return 0
        issued = 0
        for reference in self.store.awaiting_without_findings():
            app = self.store.application(reference)
            if app is None:
                continue
            try:
                self._issue(app, actor=Actor.SYSTEM, reason='review = "auto": no findings')
                issued += 1
            except TransitionError:
                pass  # another worker issued it
        return issued

    @staticmethod
    def _locked(tx: Tx, reference: str) -> Application:
        app: Application | None = tx.get_application(reference)
        if app is None:
            raise DecisionError(f"no application {reference}")
        return app


def _reads_as_eoi(data: bytes) -> bool:
    """Whether ``data`` is an expression of interest (read as the inbox reads one)."""
    try:
        read_eoi(data)
    except Exception:
        return False
    return True


def _wrong_folder(reference: str | None) -> PermanentError:
    which = f" (application {reference})" if reference else ""
    return PermanentError(
        "wrong_folder",
        f"The file is an expression of interest{which}, not a consent signed by the "
        "Commission: it is in the wrong folder. Put expressions of interest in inbox/; "
        "signed/ takes only consents the Commission has signed.",
    )
