"""Mail's targets (issue 18), against one real ``consentflow run`` process on 127.0.0.1.

- Mail to record: a message with an EOI attached is appended to a Dovecot mailbox
  (Debian's, started from ``tests/dovecot/dovecot.conf``); the time from the APPEND's
  answer until its application is in the database, with the engine waiting in IMAP IDLE;
  p95 ≤ 3 s. Messages are appended one at a time, a second apart, as mail arrives.
- State change to SMTP accepted: EOIs dropped in ``inbox/`` one at a time; each state
  change queues its messages (received, consent issued, consent to sign); the time from
  the notification's row (written in the state change's transaction) until an aiosmtpd
  server in this process has the whole message (the moment before it answers 250);
  p95 ≤ 2 s.

Runnable alone: ``python -m bench.mail [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from bench.corpus import Corpus
from bench.engine import Home, home_key
from bench.report import Row, percentile, render_table, status
from tests.imapserver import PASSWORD, Dovecot
from tests.smtpserver import SmtpServer
from workflow.demo_pki import DemoPki
from workflow.store import Store

Add = Callable[..., None]
MAIL_TARGET_S = 3.0
SMTP_TARGET_S = 2.0
PASSWORD_ENV = "BENCH_IMAP_PASSWORD"


def _message(index: int, data: bytes) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"applicant{index}@example.fi"
    mail["To"] = "office@localhost"
    mail["Subject"] = f"Expression of interest {index}"
    mail["Message-ID"] = make_msgid(domain="example.fi")
    mail.set_content("Our form is attached.\n")
    mail.add_attachment(data, maintype="application", subtype="pdf", filename=f"eoi-{index}.pdf")
    return mail.as_bytes()


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def measure(add: Add, corpus: Corpus, work: Path, pki: DemoPki, *, quick: bool) -> None:
    """Both mail rows, from one engine process with IMAP and SMTP configured."""
    mails, drops = (5, 6) if quick else (30, 40)
    if shutil.which("dovecot") is None and not Path("/usr/sbin/dovecot").exists():
        add("mail", "mail intake and notifications", "not measured",
            "dovecot is not installed (Debian package dovecot-imapd)")  # fmt: skip
        return
    dovecot = Dovecot().start()
    smtp = SmtpServer().start()
    arrived: dict[str, datetime] = {}

    def keep(message: EmailMessage) -> None:
        arrived[str(message["Message-ID"])] = datetime.now(UTC)

    smtp.on_data = keep
    home = Home(work / "mail", pki=pki)
    with (home.root / "consentflow.toml").open("a") as config:
        config.write(
            "\n[mail]\n"
            f'imap_url = "{dovecot.url}"\n'
            f'imap_password_env = "{PASSWORD_ENV}"\n'
            f'smtp_url = "{smtp.url}"\n'
            'from = "Covenant office <office@localhost>"\n'
            'commission_to = "signer@commission.example.eu"\n'
            'office_to = "staff@example.org"\n'
        )
    os.environ[PASSWORD_ENV] = PASSWORD
    store = Store(f"sqlite:///{home.root / 'consentflow.db'}", audit_key=home_key(home.root))
    try:
        home.start()
        time.sleep(2)  # the reader logs in and enters IDLE
        # -- mail appended → application recorded
        seconds: list[float] = []
        for index in range(mails):
            before = len(store.applications())
            dovecot.append(_message(index, corpus.doc(index * 10 + 1)))
            began = time.perf_counter()

            def recorded(count: int = before) -> bool:
                return len(store.applications()) > count

            if not _wait(recorded, timeout=60):
                raise RuntimeError(f"mail {index} was not recorded; see {home.log_path}")
            seconds.append(time.perf_counter() - began)
            time.sleep(1.0)
        p95 = percentile(seconds, 0.95)
        add("mail", "a mail appended to the mailbox until its application is recorded (IDLE)",
            f"p95 {p95:.2f} s", f"p50 {statistics.median(seconds):.2f} s, max "
            f"{max(seconds):.2f} s, {len(seconds)} messages",
            f"p95 ≤ {MAIL_TARGET_S:.0f} s", status(p95 <= MAIL_TARGET_S))  # fmt: skip
        # -- state change → SMTP accepted
        for index in range(drops):
            path = home.stage([(f"drop-{index}.pdf", corpus.doc(1000 + index * 10 + 1))])
            home.drop(path, "inbox")
            time.sleep(0.5)
        _wait(lambda: all(row.status != "queued" for row in store.notifications()), 120)
        latencies = [
            (arrived[row.message_id] - row.created_at).total_seconds()
            for row in store.notifications()
            if row.message_id in arrived and row.status == "accepted"
        ]
        queued = sum(row.status != "accepted" for row in store.notifications())
        p95 = percentile(latencies, 0.95)
        met = status(p95 <= SMTP_TARGET_S and not queued)
        add("mail", "a state change until its notification is accepted by SMTP",
            f"p95 {p95:.2f} s", f"p50 {statistics.median(latencies):.2f} s, "
            f"{len(latencies)} messages, {queued} not accepted",
            f"p95 ≤ {SMTP_TARGET_S:.0f} s", met)  # fmt: skip
    finally:
        home.stop()
        store.close()
        smtp.stop()
        dovecot.remove()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.mail``: the mail rows alone, printed as a table."""
    parser = argparse.ArgumentParser(prog="python -m bench.mail", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="consentflow-bench-mail-"))
    rows: list[Row] = []
    try:
        from workflow.demo_pki import make_demo_pki

        pki = make_demo_pki(work / "pki")
        measure(lambda *a: rows.append(Row(*a)), Corpus(2), work, pki, quick=args.quick)
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    print(render_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
