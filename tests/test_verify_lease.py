"""The lease of a file in signed/ is renewed while it is being verified (SPEC 7 rule 8).

A long verification must not let another worker take the file over: the intake's lease
keeper renews the ledger row from its own thread while the worker's thread is busy in the
verifier. The processor here verifies the claimed file, with the real verifier, again and
again until the row's lease has moved, then records the file as done.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from tests.eoi_files import filled_eoi
from workflow.config import load_settings
from workflow.intake import Claimed, Intake
from workflow.store import Store
from workflow.verification import SignaturePolicy, Verifier


def test_lease_is_renewed_while_verifying(tmp_path: Path, database_url: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    settings = load_settings(
        home,
        database={"url": database_url},
        intake={"stability_ms": 200, "rescan_interval_s": 2, "lease_s": 0.6},
    )
    store = Store(settings.database_url)
    store.ensure_schema()
    verifier = Verifier(SignaturePolicy(trust_roots=()))
    leases: list[datetime | None] = []
    verified = 0

    def processor(claimed: Claimed) -> str:
        nonlocal verified
        with store.tx() as tx:
            item = tx.get_item(claimed.item_id, lock=False)
            assert item is not None
            leases.append(item.lease_until)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            report = verifier.verify_sync(claimed.data, lambda _sha: None)
            assert not report.accepted
            verified += 1
            with store.tx() as tx:
                item = tx.get_item(claimed.item_id, lock=False)
                assert item is not None
                if item.lease_until != leases[0]:
                    leases.append(item.lease_until)
                    break
        with store.tx() as tx:
            item = tx.get_item(claimed.item_id)
            assert item is not None
            tx.finish_item(item, status="done", outcome="verified", sha256=claimed.sha256)
        return "verified"

    signed = home / "signed"
    intake = Intake(
        store,
        folders={"signed": signed},
        failed_dir=home / "failed",
        processors={"signed": processor},
        settings=settings.intake,
    )
    signed.mkdir()
    intake.prepare()
    (signed / "slow.pdf").write_bytes(filled_eoi())
    intake.offer(signed / "slow.pdf")
    intake.close()
    store.close()
    assert len(leases) == 2, f"the lease was not renewed during {verified} verifications"
    first, renewed = leases
    assert first is not None and renewed is not None and renewed > first
