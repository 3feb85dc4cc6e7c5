"""The ``consentflow`` command line (SPEC §8): thin commands over the engine and the forms.

Each command parses, calls one function, prints human text or (``--json``) one stable
JSON document. Domain errors are translated to messages and exit codes in one
place, :func:`_errors`; no command ends in a traceback.
"""

from __future__ import annotations

import getpass
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from forms.eoi import FORM_NAME, FORM_VERSION, Lang
from forms.errors import UnusableDocument
from workflow import cli_reissue as _cli_reissue
from workflow.config import ConfigError, Settings, load_settings
from workflow.intake import FolderError
from workflow.records import application_json, event_json, summary_json
from workflow.signing import SignerError
from workflow.states import DecisionError, State, TransitionError
from workflow.store import Store, StoreError, wait_for_database
from workflow.verification import TrustRootError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="consentflow: Covenant Supporter applications — EOI intake, consent forms, signatures.",
)
form_app = typer.Typer(no_args_is_help=True, help="Blank forms.")
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")
user_app = typer.Typer(
    no_args_is_help=True, help="Dashboard users (roles: viewer, office, commission, admin)."
)
app.add_typer(form_app, name="form")
app.add_typer(user_app, name="user")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")

_state: dict[str, Path] = {}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


@app.callback()
def _root(
    home: Annotated[
        Path,
        typer.Option(
            "--home",
            envvar="CONSENTFLOW_HOME",
            help="Runtime folder (inbox/, signed/, outbox/, archive/, failed/, database).",
        ),
    ] = Path("."),
) -> None:
    """Covenant Supporter applications: EOI intake, consent forms, Commission signatures."""
    _state["home"] = home


def _settings() -> Settings:
    return load_settings(_state.get("home", Path(".")))


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"consentflow: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Translate domain errors to one-line messages and exit codes."""
    try:
        yield
    except ConfigError as exc:
        _fail(str(exc), 78)
    except (StoreError, FolderError) as exc:
        _fail(str(exc), 78)
    except (TransitionError, DecisionError) as exc:
        _fail(str(exc), 1)
    except LookupError as exc:
        _fail(str(exc).strip("'\""), 1)
    except (SignerError, TrustRootError) as exc:
        _fail(str(exc), 78)


def _quiet_libraries() -> None:
    """Keep library noise about hostile files out of the office's log.

    pyHanko logs every rejected signature with a traceback at WARNING, pypdf every
    repair it makes; the verdict and its reasons are in our own log line and the
    stored report. pypdf's level must stay at WARNING (forms.reading counts its
    repair warnings), so its records are dropped by a handler instead.
    """
    for name in ("pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    pypdf = logging.getLogger("pypdf")
    pypdf.propagate = False
    if not any(isinstance(handler, logging.NullHandler) for handler in pypdf.handlers):
        pypdf.addHandler(logging.NullHandler())


def _store(settings: Settings) -> Store:
    store = Store(settings.database_url)
    store.ensure_schema()
    return store


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


# -- running -------------------------------------------------------------------------------


@app.command()
def run(
    once: Annotated[bool, typer.Option("--once", help="Process what is there, then exit.")] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes sharing the folders.")
    ] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail.")] = False,
    no_web: Annotated[
        bool, typer.Option("--no-web", help="Do not serve the dashboard ([web] listen).")
    ] = False,
) -> None:
    """Watch inbox/ and signed/ and process every file that arrives; serve the dashboard."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("watchdog").setLevel(logging.WARNING)
    _quiet_libraries()
    with _errors():
        settings = _settings()
        stop = _SignalFlag()
        if not once:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, stop.set)
        web = None
        if not (once or no_web or not settings.web.enabled):
            # The dashboard runs in the process the operator started (with --workers, the
            # supervisor): one per `run`, beside the engine, never in each worker. It needs
            # the schema, so a database server still starting is waited for first.
            if not wait_for_database(Store(settings.database_url), stop.is_set):
                return
            web = _start_web(settings)
        try:
            if workers > 1:
                from workflow.workers import supervise  # noqa: PLC0415

                raise typer.Exit(supervise(settings, workers, once=once, verbose=verbose))
            # Only here: the supervisor above imports no engine, so it starts and exits at once.
            from workflow.engine import Engine  # noqa: PLC0415 - keeps the other commands fast

            engine = Engine(settings)
            try:
                if once:
                    engine.run_once()
                else:
                    engine.run(stop, freeze_heap=True)
            finally:
                engine.close()  # SQLite folds its -wal file back in when the last one goes
        finally:
            if web is not None:
                web.stop()


def _start_web(settings: Settings) -> Any:
    """Start the dashboard (``consentflow web``) in a child process, once it listens.

    The caller has made or checked the schema, with this process's messages."""
    from workflow.web.process import WebProcess, WebStartError  # noqa: PLC0415 - light

    server = WebProcess(settings.home, settings.web.host, settings.web.port)
    try:
        server.start()
    except WebStartError as exc:
        _fail(str(exc), 78)
    return server


@app.command()
def web(
    with_parent: Annotated[
        bool, typer.Option("--with-parent", hidden=True, help="Exit when standard input closes.")
    ] = False,
) -> None:
    """Serve the dashboard alone, without processing files (hosts that only serve pages)."""
    from workflow.web.server import WebServer  # noqa: PLC0415

    with _errors():
        settings = _settings()
        server = WebServer(settings, store=_store(settings))
    server.announce(lambda line: typer.echo(line, err=True))
    if not server.serve(with_parent=with_parent):
        _fail(f"the dashboard cannot listen on {settings.web.listen}: change [web] listen", 78)


class _SignalFlag:
    """A stop flag for signal handlers: setting it takes no lock.

    ``threading.Event.set`` takes a lock, and a second signal arriving while the first
    handler holds it re-enters ``set`` in the same thread and waits for itself forever;
    the engine's loop polls this flag instead.
    """

    def __init__(self) -> None:
        self.signum = 0

    def set(self, signum: int, _frame: object) -> None:
        """Signal handler: remember the signal, nothing more."""
        self.signum = signum

    def is_set(self) -> bool:
        """Whether a stop signal arrived."""
        return self.signum != 0


# -- the office's view ---------------------------------------------------------------------


@app.command()
def status(
    state: Annotated[State | None, typer.Option("--state", help="Only this state.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List applications, one line each."""
    from workflow.notices import shown  # noqa: PLC0415

    with _errors():
        settings = _settings()
        store = _store(settings)
        rows = [summary_json(row) for row in store.applications(state)]
        notices = shown(store, {"inbox": settings.inbox, "signed": settings.signed})
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        typer.echo(
            f"{row['reference']}  {row['state']:<16} {row['country']:<2}  "
            f"{row['org_name']}  (updated {row['updated_at'][:19]}Z)"
        )
    if not rows:
        typer.echo("no applications")
    for notice in notices:
        until = f"; taken as it is at {notice.until:%Y-%m-%d %H:%M:%S}Z" if notice.until else ""
        typer.echo(
            f"{notice.folder}/{notice.name}  {notice.kind}: {notice.message} "
            f"(since {notice.since:%Y-%m-%d %H:%M:%S}Z{until})"
        )


@app.command()
def show(reference: str, as_json: JsonOpt = False) -> None:
    """One application: fields, state, findings, documents, events, signature reports."""
    with _errors():
        store = _store(_settings())
        row = store.application(reference)
        if row is None or row.id is None:
            _fail(f"no application {reference}", 1)
        detail = application_json(store, row)
    if as_json:
        _print_json(detail)
        return
    typer.echo(
        f"{detail['reference']}  {detail['state']}  {detail['org_name']} ({detail['country']})"
    )
    typer.echo(f"received {detail['received_at']}, updated {detail['updated_at']}")
    for name, value in detail["fields"].items():
        typer.echo(f"  {name}: {value}")
    for problem in detail["problems"]:
        typer.echo(f"  problem {problem['field']} [{problem['code']}]: {problem['message']}")
    for finding in detail["findings"]:
        typer.echo(f"  finding [{finding['code']}]: {finding['message']}")
    for doc in detail["documents"]:
        typer.echo(f"  document {doc['kind']}: {doc['sha256']} ({doc['size']} bytes)")
    for report in detail["signature_reports"]:
        verdict = "accepted" if report["accepted"] else "rejected"
        typer.echo(
            f"  signature {verdict}: {report.get('indication')} {report.get('subindication') or ''}"
        )
    for event in detail["events"]:
        typer.echo("  " + _event_line(event))


def _event_line(event: dict[str, Any]) -> str:
    move = f" {event['from_state'] or ''}→{event['to_state']}" if event["to_state"] else ""
    ref = event["reference"] or "-"
    head = f"{event['at'][:19]}Z {ref:<15} {event['actor']:<10}"
    return f"{head} {event['kind']}{move}: {event['reason']}"


@app.command("log")
def log_(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many recent events.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The processing log, newest last; -f follows (JSON lines with --json)."""
    with _errors():
        store = _store(_settings())
        rows = [event_json(row) for row in store.events(limit=limit)]
        if as_json and not follow:
            _print_json(rows)
            return
        last = 0
        while True:
            for row in rows:
                typer.echo(json.dumps(row, ensure_ascii=False) if as_json else _event_line(row))
                last = row["id"]
            if not follow:
                return
            time.sleep(0.5)
            rows = [event_json(row) for row in store.events(after_id=last)]


@app.command()
def approve(
    reference: str,
    by: Annotated[
        str | None, typer.Option("--by", help="Office user (default: login name).")
    ] = None,
) -> None:
    """Confirm eligibility: the consent PDF is issued into outbox/ at once."""
    from workflow.engine import build_applications  # noqa: PLC0415

    with _errors():
        settings = _settings()
        services = build_applications(_store(settings), settings)
        issued = services.approve(reference, actor=by or getpass.getuser())
    typer.echo(f"{reference}: consent issued -> {issued.path} (sha256 {issued.sha256})")


@app.command()
def reject(
    reference: str,
    reason: Annotated[str, typer.Option("--reason", help="Why the applicant is not eligible.")],
    by: Annotated[
        str | None, typer.Option("--by", help="Office user (default: login name).")
    ] = None,
) -> None:
    """Decide that the applicant is not eligible, with a reason."""
    from workflow.applications import Applications  # noqa: PLC0415

    with _errors():
        settings = _settings()
        services = Applications(_store(settings), settings)  # no seal or verifier needed
        services.reject(reference, actor=by or getpass.getuser(), reason=reason)
    typer.echo(f"{reference}: ineligible ({reason})")


@app.command()
def retry(
    names: Annotated[
        list[str] | None, typer.Argument(help="Files in failed/ to process again.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every file in failed/.")] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Office user (default: login name).")
    ] = None,
) -> None:
    """Put files from failed/ back into the folder they came from, to be processed again."""
    from workflow.applications import Applications  # noqa: PLC0415
    from workflow.failed import FailedFolder  # noqa: PLC0415

    with _errors():
        settings = _settings()
        store = _store(settings)
        chosen = FailedFolder(settings.failed).files() if all_ else list(names or [])
        if not chosen:
            _fail("name the files to retry, or pass --all", 2)
        try:
            moved = Applications(store, settings).retry(chosen, actor=by or getpass.getuser())
        except FileNotFoundError as exc:  # no such file, or a link or report (RetryError)
            _fail(str(exc), 1)
    for name in moved:
        typer.echo(f"retrying {name}")


# -- dashboard users -------------------------------------------------------------------------


@contextmanager
def _users() -> Iterator[Any]:
    """The users service, with its errors as one-line messages (exit 1)."""
    from workflow.users import UserError, Users  # noqa: PLC0415 - argon2 only here

    with _errors():
        service = Users(_store(_settings()))
        try:
            yield service
        except UserError as exc:
            _fail(str(exc), 1)


def _new_password(password_env: str | None) -> str:
    import os  # noqa: PLC0415

    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            _fail(f"the environment variable {password_env} is not set", 2)
        return value
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


PasswordEnvOpt = Annotated[
    str | None,
    typer.Option("--password-env", help="Environment variable holding the password (no prompt)."),
]
ByOpt = Annotated[
    str | None, typer.Option("--by", help="Who makes the change (default: login name).")
]


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[str, typer.Option("--role", help="viewer, office, commission or admin.")],
    password_env: PasswordEnvOpt = None,
    by: ByOpt = None,
) -> None:
    """Add a dashboard user (the password is prompted, or read from --password-env)."""
    with _users() as users:
        user = users.add(name, role, _new_password(password_env), actor=by or getpass.getuser())
    typer.echo(f"added {user.name} ({user.role})")


@user_app.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    """Every user: name, role, enabled or disabled."""
    with _users() as users:
        rows = [
            {
                "name": user.name,
                "role": user.role,
                "disabled": user.disabled,
                "created_at": user.created_at.isoformat(),
            }
            for user in users.store.users()
        ]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        typer.echo(
            f"{row['name']:<24} {row['role']:<11} {'disabled' if row['disabled'] else 'enabled'}"
        )
    if not rows:
        typer.echo(
            "no users (`consentflow run` or `web` prints a link that creates the first admin)"
        )


@user_app.command("disable")
def user_disable(name: str, by: ByOpt = None) -> None:
    """Disable a user: their sessions and API token stop working at once."""
    with _users() as users:
        users.disable(name, actor=by or getpass.getuser())
    typer.echo(f"disabled {name}")


@user_app.command("passwd")
def user_passwd(name: str, password_env: PasswordEnvOpt = None, by: ByOpt = None) -> None:
    """Set a user's password; their open sessions end."""
    with _users() as users:
        users.set_password(name, _new_password(password_env), actor=by or getpass.getuser())
    typer.echo(f"password of {name} changed")


@user_app.command("token")
def user_token(name: str, by: ByOpt = None) -> None:
    """Print a new API token (Authorization: Bearer …); the user's earlier token stops working."""
    with _users() as users:
        token = users.new_api_token(name, actor=by or getpass.getuser())
    typer.echo(token)


# -- schema and audit ----------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database or migrate it to this version's schema."""
    with _errors():
        store = Store(_settings().database_url)
        before = store.current_revision()
        store.upgrade()
        typer.echo(f"database schema: {before or 'empty'} -> {store.current_revision()}")


@audit_app.command("verify")
def audit_verify(as_json: JsonOpt = False) -> None:
    """Recompute the event hash chain; exit 1 and name the event if history was edited."""
    with _errors():
        result = _store(_settings()).verify_chain()
    if as_json:
        _print_json(
            {
                "ok": result.ok,
                "events": result.events,
                "bad_event": result.bad_event_id,
                "problem": result.problem,
            }
        )
    elif result.ok:
        typer.echo(f"audit trail intact: {result.events} events")
    else:
        typer.echo(f"audit trail BROKEN at event {result.bad_event_id}: it {result.problem}")
    if not result.ok:
        raise typer.Exit(1)


# -- forms -----------------------------------------------------------------------------------


@form_app.command("eoi")
def form_eoi(
    out: Path,
    lang: Annotated[Lang, typer.Option("--lang", help="Language of the labels.")] = Lang.EN,
) -> None:
    """Write the blank expression-of-interest form."""
    from forms.blank import render_blank_eoi  # noqa: PLC0415

    out.write_bytes(render_blank_eoi(lang))
    typer.echo(f"wrote {out} ({lang.value})")


@app.command()
def check(file: Path, as_json: JsonOpt = False) -> None:
    """Extract and validate an EOI without recording it: exit 0 valid, 1 problems, 2 unusable."""
    from forms.findings import eligibility_findings  # noqa: PLC0415
    from forms.reading import read_eoi  # noqa: PLC0415
    from forms.validation import validate  # noqa: PLC0415

    _quiet_libraries()
    with _errors():
        settings = _settings()
    try:
        data = file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}", 2)
    try:
        raw = read_eoi(data, max_bytes=int(settings.intake.max_file_mb * 1024 * 1024))
    except UnusableDocument as exc:
        if as_json:
            _print_json({"valid": False, "error": {"code": str(exc.code), "message": exc.message}})
        else:
            typer.echo(f"{file}: unusable ({exc.code}): {exc.message}")
        raise typer.Exit(2) from None
    result = validate(raw.values, lang=raw.lang, today=datetime.now(UTC).date())
    findings = (
        eligibility_findings(result.eoi, eligible_countries=settings.review.eligible_countries)
        if result.eoi is not None
        else ()
    )
    fields = dict(result.fields) | (result.eoi.to_fields() if result.eoi else {})
    document = {
        "valid": result.valid,
        "form": FORM_NAME,
        "version": FORM_VERSION,
        "lang": raw.lang.value,
        "fields": fields,
        "problems": [problem.to_json() for problem in result.problems],
        "findings": [finding.to_json() for finding in findings],
    }
    if as_json:
        _print_json(document)
    else:
        typer.echo(f"{file}: {'valid' if result.valid else 'problems found'}")
        for problem in result.problems:
            typer.echo(f"  {problem.field} [{problem.code}]: {problem.message}")
        for finding in findings:
            typer.echo(f"  finding [{finding.code}]: {finding.message}")
    raise typer.Exit(0 if result.valid else 1)


# -- signatures ------------------------------------------------------------------------------


@app.command()
def verify(file: Path, as_json: JsonOpt = False) -> None:
    """Verify a signed consent without recording it: exit 0 accepted, 1 rejected, 2 unusable."""
    from workflow.engine import build_applications  # noqa: PLC0415

    _quiet_libraries()
    with _errors():
        settings = _settings()
        services = build_applications(_store(settings), settings)
    try:
        data = file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}", 2)
    report = services.verify(data)
    unusable = any(
        check.code in {"not_pdf", "unusable"} and not check.ok for check in report.checks
    )
    document = report.to_json()
    document.pop("etsi_report_xml", None)
    if as_json:
        _print_json(document)
    else:
        verdict = "accepted" if report.accepted else "REJECTED"
        typer.echo(f"{file}: {verdict} ({report.indication}/{report.subindication or '-'})")
        typer.echo(f"  reference: {report.reference or '(not issued here)'}")
        typer.echo(f"  signer: {report.signer_subject} (sha256 {report.signer_sha256})")
        for check in report.checks:
            typer.echo(f"  [{'ok' if check.ok else 'FAIL'}] {check.code}: {check.message}")
    raise typer.Exit(0 if report.accepted else 2 if unusable else 1)


@app.command()
def sign(
    source: Annotated[Path, typer.Argument(metavar="IN", help="The issued consent PDF.")],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Where to write the signed PDF.")],
    p12: Annotated[Path, typer.Option("--p12", help="The signer's PKCS#12 file.")],
    passphrase_env: Annotated[
        str | None,
        typer.Option("--passphrase-env", help="Environment variable holding the passphrase."),
    ] = None,
    timestamp_url: Annotated[
        str | None, typer.Option("--timestamp-url", help="RFC 3161 timestamp authority.")
    ] = None,
) -> None:
    """Sign a consent into CommissionSignature (for a signer with a PKCS#12 file)."""
    import os  # noqa: PLC0415

    from workflow.signing import Signer, sign_consent  # noqa: PLC0415

    with _errors():
        passphrase = os.environ.get(passphrase_env) if passphrase_env else None
        if passphrase_env and passphrase is None:
            _fail(f"the environment variable {passphrase_env} is not set", 2)
        signer = Signer.from_p12(p12, passphrase.encode() if passphrase else None)
        try:
            signed = sign_consent(source.read_bytes(), signer, timestamp_url=timestamp_url)
        except OSError as exc:
            _fail(f"cannot read {source}: {exc.strerror}", 2)
    out.write_bytes(signed)
    typer.echo(f"signed {source} -> {out} as {signer.subject}")


@app.command("demo-pki")
def demo_pki(directory: Path) -> None:
    """Make a DEMO Commission CA, signer and office seal (never for production)."""
    from workflow.demo_pki import make_demo_pki  # noqa: PLC0415

    pki = make_demo_pki(directory)
    typer.echo(f"wrote a DEMO PKI (not for production) to {directory}")
    typer.echo("add these lines to consentflow.toml:\n")
    typer.echo(pki.config_text)


app.command("reissue")(_cli_reissue.reissue)


def main() -> None:
    """Entry point of the ``consentflow`` console script."""
    app()
