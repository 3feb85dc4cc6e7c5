"""The ``consentflow`` command line (SPEC §8): thin commands over the engine and the forms.

Each command parses, calls one function, prints human text or (``--json``) one stable
JSON document. Domain errors are translated to messages and exit codes in one
place, :func:`_errors`; no command ends in a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperOption

from forms.eoi import Lang
from workflow.printable import PrintableFormatter, printable
from workflow.states import State

if TYPE_CHECKING:  # imported where used: `--help` and `status` must start at once
    from workflow.config import Settings
    from workflow.store import Store


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    """No ``<bool>`` after a flag in ``--help``: a flag takes no value (Typer 0.29 prints one)."""
    return None if self.is_flag else _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

#: Plain help and error text: rich's help formatter alone costs more than the 0.15 s that
#: `--help` may take (issue 16). Sub-apps of other modules pass it too: `typer.Typer(**PLAIN)`.
PLAIN: dict[str, Any] = {"rich_markup_mode": None, "pretty_exceptions_enable": False}

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="consentflow: Covenant Supporter applications — EOI intake, consent forms, signatures.",
    **PLAIN,
)
form_app = typer.Typer(no_args_is_help=True, help="Blank forms.", **PLAIN)
db_app = typer.Typer(no_args_is_help=True, help="The database schema.", **PLAIN)
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.", **PLAIN)
user_app = typer.Typer(
    no_args_is_help=True,
    help="Dashboard users (roles: viewer, office, commission, admin).",
    **PLAIN,
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
            metavar="DIR",
            help="Runtime folder (inbox/, signed/, outbox/, archive/, failed/, database).",
        ),
    ] = Path("."),
) -> None:
    """Covenant Supporter applications: EOI intake, consent forms, Commission signatures."""
    _state["home"] = home


def _settings(*, existing: bool = True) -> Settings:
    """The settings of ``--home``; unless it may be made (``existing=False``: ``run``,
    ``web``, ``db upgrade``, ``user``), a missing home folder is named, never created."""
    from workflow.config import load_settings  # noqa: PLC0415
    from workflow.readonly import home_folder  # noqa: PLC0415

    home = _state.get("home", Path("."))
    if existing:
        home_folder(home)
    return load_settings(home)


def _login() -> str:
    import getpass  # noqa: PLC0415

    return getpass.getuser()


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"consentflow: {printable(message)}", err=True)
    raise typer.Exit(code)


#: Domain errors and their exit codes, by module and class name: a module that was not
#: imported cannot have raised its error, so `_errors` imports nothing to recognise them.
_EXIT_CODES = (
    ("workflow.readonly", "NotAHomeError", 78),
    ("workflow.config", "ConfigError", 78),
    ("workflow.store", "StoreError", 78),
    ("workflow.audit_key", "AuditKeyError", 78),
    ("workflow.intake", "FolderError", 78),
    ("workflow.states", "TransitionError", 1),
    ("workflow.states", "DecisionError", 1),
    ("workflow.signing", "SignerError", 78),
    ("workflow.verification", "TrustRootError", 78),
    # A database server that does not answer: `run` waits for it, a command says so.
    ("sqlalchemy.exc", "DBAPIError", 69),
)


@contextmanager
def _errors() -> Iterator[None]:
    """Translate domain errors to one-line messages and exit codes."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        for module, name, code in _EXIT_CODES:
            error = getattr(sys.modules.get(module), name, None)
            if isinstance(error, type) and isinstance(exc, error):
                _fail(_with_hint(str(exc)), code)
        if isinstance(exc, LookupError):
            _fail(_with_hint(str(exc).strip("'\"")), 1)
        raise


def _with_hint(message: str) -> str:
    if message.startswith("(") and ") " in message:  # SQLAlchemy's "(driver.Error) text"
        first = message.split(") ", 1)[1].splitlines()[0].strip()
        return (
            f"the database cannot be reached ({first}); check [database] url and that the "
            "server runs, then try again"
        )
    if message.startswith("no application "):
        return f"{message}; `consentflow status` lists the references"
    return message


def _reader(settings: Settings) -> Any:
    """The database read-only (never created or migrated; see :mod:`workflow.readonly`)."""
    from workflow.readonly import open_reader  # noqa: PLC0415

    return open_reader(settings.database_url, settings.home)


def _read_store(settings: Settings, **options: Any) -> Store:
    """The full store (``options``: the Store's keyword arguments), opened read-only after
    the same checks as `_reader`: for ``verify`` and ``audit verify``."""
    from workflow.readonly import SqliteReader, open_reader  # noqa: PLC0415

    reader = open_reader(settings.database_url, settings.home, **options)
    store: Store = reader.store(**options) if isinstance(reader, SqliteReader) else reader
    return store


def _writable_store(settings: Settings) -> Store:
    """The store of an existing home's database, for commands that change applications."""
    from workflow.readonly import SqliteReader  # noqa: PLC0415

    reader = _reader(settings)  # the same "not a consentflow home" answer as status
    if isinstance(reader, SqliteReader):
        reader.close()
    return _store(settings)


def _refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        _fail(f"{path} already exists: choose another name, or pass --force to replace it", 1)


def _write(path: Path, data: bytes) -> None:
    """Write an output file, or exit 1 with a sentence (a missing or unwritable folder)."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror}", 1)


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
    from workflow.audit_key import load_key  # noqa: PLC0415
    from workflow.store import Store  # noqa: PLC0415

    store = Store(settings.database_url, audit_key=load_key(settings.home))
    store.ensure_schema()
    return store


def _say(line: str) -> None:
    """Print one human-readable line: text from outside (file names, form values,
    reasons, subjects) cannot break it into fake lines or drive the terminal."""
    typer.echo(printable(line))


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
    import signal  # noqa: PLC0415

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    logging.getLogger("watchdog").setLevel(logging.WARNING)
    _quiet_libraries()
    with _errors():
        settings = _settings(existing=False)  # `run` makes a new home
        stop = _SignalFlag()
        if not once:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, stop.set)
        web = None
        if not (once or no_web or not settings.web.enabled):
            # The dashboard runs in the process the operator started (with --workers, the
            # supervisor): one per `run`, beside the engine, never in each worker. It needs
            # the schema, so a database server still starting is waited for first.
            from workflow.store import Store, wait_for_database  # noqa: PLC0415

            if not wait_for_database(Store(settings.database_url), stop.is_set) or stop.is_set():
                return  # stopped while the schema was made: no dashboard to start and stop
            web = _start_web(settings, stop)
        try:
            if stop.is_set():
                return  # stopped while the dashboard started: start nothing more
            if workers > 1:
                from workflow.workers import supervise  # noqa: PLC0415

                status = supervise(
                    settings, workers, once=once, verbose=verbose, stop_requested=stop.is_set
                )
                raise typer.Exit(status)
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


def _start_web(settings: Settings, stop: _SignalFlag) -> Any:
    """Start the dashboard (``consentflow web``) in a child process, once it listens.

    The caller has made or checked the schema, with this process's messages. A stop signal
    while the child starts ends the child too, whether it reached the child (sent to the
    process group) or this process alone (the child is stopped without waiting for it to
    listen): that is a stop, not a dashboard that cannot start (None is returned)."""
    from workflow.web.process import WebProcess, WebStartError  # noqa: PLC0415 - light

    server = WebProcess(settings.home, settings.web.host, settings.web.port)
    try:
        server.start(should_stop=stop.is_set)
    except WebStartError as exc:
        if stop.is_set():
            return None
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
        settings = _settings(existing=False)
        store = _store(settings)
        # Every change made here is an event: a key that cannot extend the chain stops the
        # dashboard at start, as it stops the engine, not at its first user's first click.
        store.key_chain()
        server = WebServer(settings, store=store)
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


def _state_option(value: str | None) -> str | None:
    """``--state``'s check, in Click's callback so that the message names the option."""
    if value is None:
        return None
    try:
        return State(value.strip().lower()).value
    except ValueError:
        states = ", ".join(state.value for state in State)
        raise typer.BadParameter(f"{value!r} is not a state; the states are {states}") from None


@app.command()
def status(
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            metavar="STATE",
            callback=_state_option,
            help="Only this state (received, …, suspended).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List applications, one line each."""
    wanted = State(state) if state else None
    folders: dict[str, Path] = {}
    with _errors():
        settings = _settings()
        store = _reader(settings)
        folders = {"inbox": settings.inbox, "signed": settings.signed}
        if hasattr(store, "summaries"):
            rows = store.summaries(wanted)
            notices = store.notices(folders)
        else:  # a server database: the Store's own reads
            from workflow.notices import shown  # noqa: PLC0415
            from workflow.records import summary_json  # noqa: PLC0415

            rows = [summary_json(row) for row in store.applications(wanted)]
            notices = shown(store, folders)
    if as_json:
        _print_json(rows)
        return
    lines = [
        f"{row['reference']}  {row['state']:<16} {row['country'] or '--':<2}  "
        f"{row['org_name'] or '(no organisation name)'}  (updated {row['updated_at'][:19]}Z)"
        for row in rows
    ]
    # one write for 10,000 lines; each escaped (`workflow.printable`)
    typer.echo("\n".join(map(printable, lines)) if lines else "no applications")
    for notice in notices:
        until = f"; taken as it is at {notice.until:%Y-%m-%d %H:%M:%S}Z" if notice.until else ""
        _say(
            f"{notice.folder}/{notice.name}  {notice.kind}: {notice.message} "
            f"(since {notice.since:%Y-%m-%d %H:%M:%S}Z{until})"
        )


@app.command()
def show(reference: str, as_json: JsonOpt = False) -> None:
    """One application: fields, state, findings, documents, events, signature reports."""
    from workflow.records import application_json  # noqa: PLC0415

    with _errors():
        store = _reader(_settings())
        reference = _reference(reference)
        row = store.application(reference)
        if row is None or row.id is None:
            _unknown_reference(reference)
        detail = application_json(store, row)
    if as_json:
        _print_json(detail)
        return
    country = f" ({detail['country']})" if detail["country"] else ""
    name = detail["org_name"] or "(no organisation name)"
    _say(f"{detail['reference']}  {detail['state']}  {name}{country}")
    _say(f"received {detail['received_at']}, updated {detail['updated_at']}")
    for name, value in detail["fields"].items():
        _say(f"  {name}: {value}")
    for problem in detail["problems"]:
        _say(f"  problem {problem['field']} [{problem['code']}]: {problem['message']}")
    for finding in detail["findings"]:
        _say(f"  finding [{finding['code']}]: {finding['message']}")
    for doc in detail["documents"]:
        _say(f"  document {doc['kind']}: {doc['sha256']} ({doc['size']} bytes)")
    for report in detail["signature_reports"]:
        verdict = "accepted" if report["accepted"] else "rejected"
        _say(
            f"  signature {verdict}: {report.get('indication')} {report.get('subindication') or ''}"
        )
    for event in detail["events"]:
        _say("  " + _event_line(event))


def _reference(reference: str) -> str:
    """References are printed upper-case; any case is accepted."""
    return reference.strip().upper()


def _unknown_reference(reference: str) -> NoReturn:
    _fail(f"no application {reference}; `consentflow status` lists the references", 1)


def _event_line(event: dict[str, Any]) -> str:
    kind = event["kind"]
    if not event["to_state"]:
        move = ""
    elif event["from_state"]:
        move = f" {event['from_state']}→{event['to_state']}"
    elif event["to_state"] != kind:
        move = f" →{event['to_state']}"
    else:
        move = ""  # "received": the first state says itself
    ref = event["reference"] or "-"
    data = event.get("data")
    name = data.get("file") if isinstance(data, dict) else None
    if event["reference"] is None and name and str(name) not in event["reason"]:
        folder = data.get("folder") if isinstance(data, dict) else None
        kind = f"{kind} {folder}/{name}" if folder else f"{kind} {name}"
    head = f"{event['at'][:19]}Z {ref:<15} {event['actor']:<10}"
    return f"{head} {kind}{move}: {event['reason']}"


@app.command("log")
def log_(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many recent events.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The processing log, newest last; -f follows (JSON lines with --json)."""
    from workflow.records import event_json  # noqa: PLC0415

    with _errors():
        store = _reader(_settings())
        rows = [event_json(row) for row in store.events(limit=limit)]
        if as_json and not follow:
            _print_json(rows)
            return
        last = 0
        while True:
            for row in rows:
                if as_json:
                    typer.echo(json.dumps(row, ensure_ascii=False))
                else:
                    _say(_event_line(row))
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

    reference = _reference(reference)
    with _errors():
        settings = _settings()
        services = build_applications(_writable_store(settings), settings)
        issued = services.approve(reference, actor=by or _login())
    _say(f"{reference}: consent issued -> {issued.path} (sha256 {issued.sha256})")


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

    reference = _reference(reference)
    with _errors():
        settings = _settings()
        services = Applications(_writable_store(settings), settings)  # no seal or verifier
        services.reject(reference, actor=by or _login(), reason=reason)
    _say(f"{reference}: ineligible ({reason})")


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
        store = _writable_store(settings)
        chosen = FailedFolder(settings.failed).files() if all_ else list(names or [])
        if not chosen:
            _fail("name the files to retry, or pass --all", 2)
        try:
            moved = Applications(store, settings).retry(chosen, actor=by or _login())
        except FileNotFoundError as exc:  # no such file, or a link or report (RetryError)
            _fail(str(exc), 1)
    for name in moved:
        _say(f"retrying {name}")


# -- dashboard users -------------------------------------------------------------------------


@contextmanager
def _users() -> Iterator[Any]:
    """The users service, with its errors as one-line messages (exit 1)."""
    from workflow.users import UserError, Users  # noqa: PLC0415 - argon2 only here

    with _errors():
        service = Users(_store(_settings(existing=False)))
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
        user = users.add(name, role, _new_password(password_env), actor=by or _login())
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
        _say(f"{row['name']:<24} {row['role']:<11} {'disabled' if row['disabled'] else 'enabled'}")
    if not rows:
        _say("no users (`consentflow run` or `web` prints a link that creates the first admin)")


@user_app.command("disable")
def user_disable(name: str, by: ByOpt = None) -> None:
    """Disable a user: their sessions and API token stop working at once."""
    with _users() as users:
        users.disable(name, actor=by or _login())
    typer.echo(f"disabled {name}")


@user_app.command("passwd")
def user_passwd(name: str, password_env: PasswordEnvOpt = None, by: ByOpt = None) -> None:
    """Set a user's password; their open sessions end."""
    with _users() as users:
        users.set_password(name, _new_password(password_env), actor=by or _login())
    typer.echo(f"password of {name} changed")


@user_app.command("token")
def user_token(name: str, by: ByOpt = None) -> None:
    """Print a new API token (Authorization: Bearer …); the user's earlier token stops working."""
    with _users() as users:
        token = users.new_api_token(name, actor=by or _login())
    typer.echo(token)


# -- schema and audit ----------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database or migrate it to this version's schema."""
    with _errors():
        from workflow.audit_key import load_key  # noqa: PLC0415
        from workflow.store import Store  # noqa: PLC0415

        settings = _settings(existing=False)
        store = Store(settings.database_url, audit_key=load_key(settings.home))
        before = store.current_revision()
        carried = store.upgrade()
        typer.echo(f"database schema: {before or 'empty'} -> {store.current_revision()}")
        if carried:
            typer.echo("event chain: carried over into the keyed chain (a re-key event records it)")


@audit_app.command("verify")
def audit_verify(as_json: JsonOpt = False) -> None:
    """Check the keyed event chain, and every application and archived document against
    it; exit 1 and name each disagreement if history or records were edited."""
    from workflow.audit import audit  # noqa: PLC0415
    from workflow.audit_key import load_key  # noqa: PLC0415

    with _errors():
        settings = _settings()
        store = _read_store(settings)  # first: "not a consentflow home" before "no key"
        store.audit_key = load_key(settings.home, create=False)  # a read: never makes one
        report = audit(store, settings.archive)
    if as_json:
        _print_json(report.to_json())
        if not report.ok:
            raise typer.Exit(1)
        return
    result = report.chain
    if not result.ok:
        where = f"at event {result.bad_event_id}" if result.bad_event_id else "at its end"
        _say(f"audit trail BROKEN {where}: it {result.problem}")
    for problem in report.problems:
        _say(f"audit: {problem.code}: {problem.message}")
    if report.ok:
        _say(
            f"audit trail intact: {result.events} events (key {report.key_id}), "
            f"{report.applications} applications and {report.documents} documents agree"
        )
    else:
        _say(f"audit FAILED: {len(report.problems) + (not result.ok)} problem(s)")
        raise typer.Exit(1)


# -- forms -----------------------------------------------------------------------------------


ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output file.")]


@form_app.command("eoi")
def form_eoi(
    out: Path,
    lang: Annotated[Lang, typer.Option("--lang", help="Language of the labels.")] = Lang.EN,
    force: ForceOpt = False,
) -> None:
    """Write the blank expression-of-interest form."""
    from forms.blank import render_blank_eoi  # noqa: PLC0415

    _refuse_overwrite(out, force)
    _write(out, render_blank_eoi(lang))
    typer.echo(f"wrote {out} ({lang.value})")


@form_app.command("fields")
def form_fields(as_json: JsonOpt = False) -> None:
    """Every EOI field: name, kind, required, maximum length, allowed values, checkbox value."""
    from forms.eoi import FIELDS, Kind  # noqa: PLC0415

    rows: list[dict[str, Any]] = [
        {
            "name": spec.name,
            "kind": spec.kind.value,
            "required": spec.required,
            "max_length": spec.max_len,
            "values": list(spec.options),
            "on_value": CHECKBOX_ON if spec.kind is Kind.CHECKBOX else None,
        }
        for spec in FIELDS
    ]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        notes = ["required" if row["required"] else "optional"]
        if row["max_length"]:
            notes.append(f"at most {row['max_length']} characters")
        if row["values"]:
            notes.append("one of " + ", ".join(row["values"]))
        if row["on_value"]:
            notes.append(f"ticked: /{row['on_value']}, not ticked: /Off")
        if row["kind"] == "hidden":
            notes.append("read-only, already filled")
        typer.echo(f"{row['name']:<24} {row['kind']:<9} {'; '.join(notes)}")


#: The export value of every checkbox of the blank form (reportlab's on-state name).
CHECKBOX_ON = "Yes"


@app.command()
def check(file: Path, as_json: JsonOpt = False) -> None:
    """Extract and validate an EOI without recording it: exit 0 valid, 1 problems, 2 unusable."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from forms.eoi import FORM_NAME, FORM_VERSION  # noqa: PLC0415
    from forms.errors import UnusableDocument  # noqa: PLC0415
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
            _say(f"{file}: unusable ({exc.code}): {exc.message}")
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
        _say(f"{file}: {'valid' if result.valid else 'problems found'}")
        for problem in result.problems:
            _say(f"  {problem.field} [{problem.code}]: {problem.message}")
        for finding in findings:
            _say(f"  finding [{finding.code}]: {finding.message}")
    raise typer.Exit(0 if result.valid else 1)


# -- signatures ------------------------------------------------------------------------------


#: How a passing check whose code names a problem reads in `verify`'s plain output.
_PASSED_WORDING = {"not_issued_here": "issued here"}


@app.command()
def verify(file: Path, as_json: JsonOpt = False) -> None:
    """Verify a signed consent without recording it: exit 0 accepted, 1 rejected, 2 unusable."""
    from workflow.engine import build_applications  # noqa: PLC0415

    _quiet_libraries()
    with _errors():
        settings = _settings()
        services = build_applications(_read_store(settings), settings)
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
        _say(f"{file}: {verdict} ({report.indication}/{report.subindication or '-'})")
        _say(f"  reference: {report.reference or '(not issued here)'}")
        if report.signer_subject:
            _say(f"  signer: {report.signer_subject} (sha256 {report.signer_sha256})")
        else:
            _say("  signer: none found")
        for check in report.checks:
            if check.ok:
                shown = _PASSED_WORDING.get(check.code, check.code)
                _say(f"  [ok] {shown}: {check.message}")
            else:
                _say(f"  [FAIL] {check.code}: {check.message}")
    raise typer.Exit(0 if report.accepted else 2 if unusable else 1)


@app.command()
def sign(  # noqa: PLR0917 - Typer reads the parameters, nobody calls it
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
    force: ForceOpt = False,
) -> None:
    """Sign a consent into CommissionSignature (for a signer with a PKCS#12 file)."""
    import os  # noqa: PLC0415

    from workflow.signing import Signer, SignerError, sign_consent  # noqa: PLC0415

    if out.resolve() == source.resolve():
        _fail("OUT must differ from IN: the issued consent stays as it was issued", 2)
    _refuse_overwrite(out, force)
    passphrase = os.environ.get(passphrase_env) if passphrase_env else None
    if passphrase_env and passphrase is None:
        _fail(f"the environment variable {passphrase_env} is not set", 2)
    try:
        data = source.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {source}: {exc.strerror}", 2)
    try:
        signer = Signer.from_p12(p12, passphrase.encode() if passphrase else None)
    except SignerError as exc:
        hint = (
            ""
            if passphrase_env
            else " If the file has a passphrase, pass --passphrase-env VAR naming an "
            "environment variable that holds it."
        )
        _fail(f"{exc}{hint}", 78)
    try:
        signed = sign_consent(data, signer, timestamp_url=timestamp_url)
    except SignerError as exc:
        _fail(f"cannot sign {source}: {exc}", 1)
    except Exception as exc:  # pyHanko's many parse errors: it is not a PDF
        _fail(f"cannot sign {source}: it is not a readable PDF ({type(exc).__name__}: {exc})", 2)
    _write(out, signed)
    typer.echo(f"signed {source} -> {out} as {signer.subject}")


#: The files `demo-pki` writes.
_DEMO_FILES = (
    "commission-root.pem",
    "commission-signer.pem",
    "commission-signer.p12",
    "office-seal.pem",
    "office-seal.p12",
)


@app.command("demo-pki")
def demo_pki(directory: Path, force: ForceOpt = False) -> None:
    """Make a DEMO Commission CA, signer and office seal (never for production)."""
    from workflow.demo_pki import make_demo_pki  # noqa: PLC0415

    existing = [name for name in _DEMO_FILES if (directory / name).exists()]
    if existing and not force:
        _fail(
            f"{directory} already holds a PKI ({', '.join(existing)}); its fingerprints may "
            "be in consentflow.toml: choose another folder, or pass --force to replace it",
            1,
        )
    try:
        pki = make_demo_pki(directory)
    except OSError as exc:
        _fail(f"cannot write the demo PKI to {directory}: {exc.strerror or exc}", 1)
    # Every line but the configuration is a TOML comment: `demo-pki pki >> consentflow.toml`.
    typer.echo(f"# wrote a DEMO PKI (not for production) to {directory}")
    typer.echo("# add these lines to consentflow.toml:\n")
    typer.echo(pki.config_text)


# Commands kept in their own modules, light at import (their work is imported when run):
# cli_life registers profile, publish, suspend, … itself; reissue and mail are registered here.
from workflow import cli_life, cli_mail, cli_reissue  # noqa: E402, F401

app.command("reissue")(cli_reissue.reissue)
app.add_typer(cli_mail.mail_app, name="mail")


def main() -> None:
    """Entry point of the ``consentflow`` console script."""
    app()
