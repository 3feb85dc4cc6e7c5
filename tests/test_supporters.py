"""After the signature (SPEC §12): profile, publish, send back, suspend, reinstate, feedback.

The services run on a real store (SQLite, and PostgreSQL when configured); signed
applications are made through the store's own transitions, each an event of the chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from workflow.archive import Archive
from workflow.cli import app as cli_app
from workflow.config import Settings, load_settings
from workflow.lifecycle.mail import KINDS
from workflow.lifecycle.service import (
    FEEDBACK,
    PROFILE,
    Lifecycle,
    ProfileError,
    add_months,
)
from workflow.states import DecisionError, State, TransitionError
from workflow.store import EventRow, Notification, Store, Token

T0 = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)

PROFILE_FORM = {
    "lang_1": "en",
    "services_1": "Peer exchange between member cities on energy plans.",
    "lang_2": "fi",
    "services_2": "Vertaisoppimista jäsenkuntien välillä energiasuunnitelmista.",
    "member_contact": "covenant@network.example.org",
    "website": "https://network.example.org",
}


class Clock:
    """The injected clock: tests move it; nothing sleeps."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    """A store, settings and the lifecycle service over one home."""

    home: Path
    settings: Settings
    store: Store
    clock: Clock
    life: Lifecycle

    def signed(self, name: str, country: str = "FI", **fields: str) -> str:
        """An application moved to ``signed`` through the store's transitions."""
        return make_signed(self.store, name, country, **fields)


def make_signed(store: Store, name: str, country: str = "FI", **fields: str) -> str:
    """A ``signed`` application, made through the store's transitions (each an event)."""
    values = {
        "org_name": name,
        "org_acronym": name[:3].upper(),
        "country": country,
        "website": "https://eoi.example.org",
        "services": "Services named in the EOI, at least twenty characters.",
        "contact_name": "Private Person",
        "contact_email": "private@example.org",
        "contact_phone": "+358401234567",
        **fields,
    }
    with store.tx() as tx:
        app = tx.new_application(
            state=State.RECEIVED, eoi_sha256=f"{len(name):02d}{name}".encode().hex()[:64],
            org_name=name, org_key=f"{name.casefold()}|{country}", country=country,
            lang="en", fields=values,
        )  # fmt: skip
        for target in (State.AWAITING_REVIEW, State.CONSENT_ISSUED, State.SIGNED):
            tx.move(app, target, actor="system", reason=f"to {target}")
        assert app.reference is not None
        return app.reference


def make_signed_in_home(store: Store, archive: Path, name: str, country: str) -> str:
    """A ``signed`` application as a home holds one, for `audit verify`: its EOI in
    ``archive`` and recorded, a "received" event naming it, then the transitions."""
    eoi = f"EOI of {name}".encode()
    sha256 = Archive(archive).put(eoi)
    with store.tx() as tx:
        app = tx.new_application(
            state=State.RECEIVED, eoi_sha256=sha256, org_name=name,
            org_key=f"{name.casefold()}|{country}", country=country, lang="en",
            fields={"org_name": name, "country": country},
        )  # fmt: skip
        tx.add_document(
            sha256=sha256, kind="eoi", size=len(eoi), original_name=f"{name}.pdf",
            application_id=app.id,
        )  # fmt: skip
        tx.append_event(
            "received", actor="system", reference=app.reference, to_state=State.RECEIVED,
            reason="EOI received", data={"sha256": sha256},
        )  # fmt: skip
        for target in (State.AWAITING_REVIEW, State.CONSENT_ISSUED, State.SIGNED):
            tx.move(app, target, actor="system", reason=f"to {target}")
        assert app.reference is not None
        return app.reference


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> World:
    settings = load_settings(tmp_path, database={"url": database_url})
    clock = Clock(T0)
    store = Store(database_url, clock=clock)
    store.ensure_schema()
    return World(tmp_path, settings, store, clock, Lifecycle(store, settings, clock=clock))


def test_a_supporters_life_is_events_with_actors_and_reasons(world: World) -> None:
    """signed → profile_created → (completed) → active → suspended → active; the public
    list follows at once, and the chain and the states verify."""
    life = world.life
    ref = world.signed("Δίκτυο Πόλεων", "GR")
    link = life.create_profile(ref, actor="anna")
    assert world.store.application(ref).state == "profile_created"  # type: ignore[union-attr]
    assert link.url.endswith(f"/supporter/{link.token}/profile")
    assert link.token not in json.dumps([e.data for e in world.store.events()])

    view = life.resolve(link.token, PROFILE)  # reading changes nothing
    assert view.reference == ref and view.profile.status == "invited"
    assert life.resolve(link.token, PROFILE).reference == ref

    with pytest.raises(DecisionError, match="not completed"):
        life.publish(ref, actor="anna")
    assert life.submit_profile(link.token, PROFILE_FORM) == ref
    life.publish(ref, actor="anna")
    assert world.store.application(ref).state == "active"  # type: ignore[union-attr]
    [listed] = life.public_list()
    assert listed == {
        "name": "Δίκτυο Πόλεων",
        "acronym": "ΔΊΚ",
        "country": "GR",
        "website": "https://network.example.org",
        "languages": ["en", "fi"],
        "services": {"en": PROFILE_FORM["services_1"], "fi": PROFILE_FORM["services_2"]},
    }

    with pytest.raises(DecisionError, match="reason"):
        life.suspend(ref, actor="commission", reason="  ")
    life.suspend(ref, actor="commission", reason="no activity in two years")
    assert life.public_list() == []
    with pytest.raises(TransitionError):
        life.suspend(ref, actor="commission", reason="again")
    life.reinstate(ref, actor="commission", reason="activity resumed")
    assert [row["name"] for row in life.public_list()] == ["Δίκτυο Πόλεων"]

    with Session(world.store.engine) as session:
        sent = [
            (row.kind, row.recipient, row.lang, row.context.get("reason"))
            for row in session.exec(select(Notification).order_by(col(Notification.id)))
            if row.kind in KINDS  # the earlier steps' messages are issue 18's
        ]
    assert sent == [
        ("profile_invitation", "private@example.org", "en", None),
        ("profile_published", "private@example.org", "en", None),
        ("supporter_suspended", "private@example.org", "en", "no activity in two years"),
        ("supporter_reinstated", "private@example.org", "en", None),
    ]

    steps = [
        (e.kind, e.actor, e.from_state, e.to_state, e.reason)
        for e in world.store.events(reference=ref)
    ][3:]
    assert steps == [
        ("state", "anna", "signed", "profile_created",
         "profile created; the supporter was sent a link to complete it"),
        ("profile_submitted", "supporter", None, None, "the supporter completed its profile"),
        ("state", "anna", "profile_created", "active", "profile published"),
        ("state", "commission", "active", "suspended", "no activity in two years"),
        ("state", "commission", "suspended", "active", "activity resumed"),
    ]  # fmt: skip
    assert world.store.verify_chain().ok
    assert world.store.state_disagreements() == []


def test_links_are_refused_when_expired_reused_or_of_another_kind(world: World) -> None:
    """A link works once, for its own supporter and page, until it expires."""
    life = world.life
    first, second = world.signed("First Network"), world.signed("Second Network")
    one = life.create_profile(first, actor="anna")
    two = life.create_profile(second, actor="anna")
    assert life.resolve(two.token, PROFILE).reference == second
    for bad in ("", "x" * 43, one.token + "x", one.token.upper()):
        with pytest.raises(LookupError):
            life.resolve(bad, PROFILE)
    with pytest.raises(LookupError):
        life.resolve(one.token, FEEDBACK)  # a profile link opens no feedback form

    assert life.submit_profile(one.token, PROFILE_FORM) == first
    with pytest.raises(LookupError):  # spent
        life.submit_profile(one.token, PROFILE_FORM)
    with pytest.raises(LookupError):
        life.resolve(one.token, PROFILE)
    other = life.profile_of(second)
    assert other is not None and other.status == "invited"  # untouched by the first's link

    world.clock.now = T0 + timedelta(days=world.settings.feedback.link_days, seconds=1)
    with pytest.raises(LookupError):  # expired
        life.resolve(two.token, PROFILE)
    with pytest.raises(LookupError):
        life.submit_profile(two.token, PROFILE_FORM)


def test_send_back_needs_a_comment_and_gives_a_new_link(world: World) -> None:
    """The office returns a draft with a comment; the old link is dead, the new one works."""
    life = world.life
    ref = world.signed("Sent Back Network")
    first = life.create_profile(ref, actor="anna")
    life.submit_profile(first.token, PROFILE_FORM)
    with pytest.raises(DecisionError, match="comment"):
        life.send_back(ref, actor="anna", comment=" ")
    again = life.send_back(ref, actor="anna", comment="Add your services in Swedish too.")
    profile = life.profile_of(ref)
    assert profile is not None and profile.status == "sent_back"
    assert profile.comment == "Add your services in Swedish too."
    with pytest.raises(DecisionError, match="not completed"):
        life.publish(ref, actor="anna")
    with pytest.raises(LookupError):
        life.resolve(first.token, PROFILE)
    assert life.resolve(again.token, PROFILE).profile.comment.startswith("Add your")
    swedish = {"lang_3": "sv", "services_3": "Erfarenhetsutbyte mellan städer."}
    life.submit_profile(again.token, {**PROFILE_FORM, **swedish})
    life.publish(ref, actor="anna")
    [row] = life.public_list()
    assert row["languages"] == ["en", "fi", "sv"]
    last = world.store.events(reference=ref)[-2]
    assert (last.kind, last.reason) == ("profile_submitted", "the supporter completed its profile")
    assert world.store.verify_chain().ok


def test_profile_form_reports_every_problem(world: World) -> None:
    """Unknown language, short services, no contact and a bad website, all at once."""
    with pytest.raises(ProfileError) as caught:
        from workflow.lifecycle.service import check_profile

        check_profile({"lang_1": "xx", "services_1": "short", "lang_2": "en",
                       "services_2": "too short", "website": "javascript:alert(1)"})  # fmt: skip
    assert set(caught.value.problems) == {"lang_1", "services_2", "member_contact", "website"}


def test_only_signed_applications_get_a_profile(world: World) -> None:
    """Creating a profile from any other state is refused and changes nothing."""
    ref = world.signed("Twice Network")
    world.life.create_profile(ref, actor="anna")
    with pytest.raises(TransitionError):
        world.life.create_profile(ref, actor="anna")
    with pytest.raises(DecisionError, match="no application"):
        world.life.create_profile("SUP-1999-99999", actor="anna")


def _active(world: World, name: str) -> str:
    ref = world.signed(name)
    link = world.life.create_profile(ref, actor="anna")
    world.life.submit_profile(link.token, PROFILE_FORM)
    world.life.publish(ref, actor="anna")
    return ref


def test_feedback_falls_due_reminds_is_late_and_is_kept_as_a_pdf(world: World) -> None:
    """Every period a report falls due: a link, reminders, late after answer_days; the
    report is a PDF document of the application and the next one falls due a period on."""
    life, clock, settings = world.life, world.clock, world.settings.feedback
    ref = _active(world, "Feedback Network")
    due = add_months(T0, settings.period_months)
    assert due == datetime(2027, 3, 31, 9, 0, tzinfo=UTC)

    assert life.sweep().due == [] and life.owed() == []
    clock.now = due - timedelta(seconds=1)
    assert life.sweep().due == []
    clock.now = due
    assert life.sweep().due == [ref]
    assert life.sweep().due == [] and life.sweep().reminded == []  # once a day is enough
    [owed] = life.owed()
    assert owed.reference == ref and not owed.late
    assert life.owed(late_only=True) == []
    clock.now = due + timedelta(days=settings.reminder_days)
    assert life.sweep().reminded == [ref]
    clock.now = due + timedelta(days=settings.answer_days)
    swept = life.sweep()
    assert swept.reminded == [ref]
    [late] = life.owed(late_only=True)
    assert late.late and late.reminders == 2

    kinds = [e.kind for e in world.store.events(reference=ref)]
    assert kinds[-3:] == ["feedback_due", "feedback_reminder", "feedback_reminder"]
    tokens = [t for t in _tokens(world) if t.purpose == FEEDBACK and t.revoked_at is None]
    assert len(tokens) == 1  # a reminder's link replaces the one before

    # The newest link is the one the supporter uses.
    clock.now += timedelta(days=settings.reminder_days)
    link = _sweep_link(world, ref)
    with pytest.raises(ProfileError):
        life.submit_feedback(link, {"members_actions": "short", "services_offered": ""})
    answers = {
        "members_actions": "Twelve members adopted SECAPs; Ελληνικά and кирилица kept.",
        "services_offered": "Workshops, translation of guidance, a helpdesk in Finnish.",
    }
    assert life.submit_feedback(link, answers) == ref
    with pytest.raises(LookupError):
        life.submit_feedback(link, answers)
    assert life.owed() == []
    app = world.store.application(ref)
    assert app is not None and app.id is not None
    [doc] = [d for d in world.store.documents(app.id) if d.kind == "feedback"]
    data = life.archive.get(doc.sha256)
    assert data.startswith(b"%PDF-") and doc.size == len(data)
    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(__import__("io").BytesIO(data)).pages)
    assert "Twelve members adopted SECAPs" in text and "Ελληνικά" in text
    profile = life.profile_of(ref)
    assert profile is not None and profile.feedback_due_at == add_months(due, 12)
    assert world.store.events(reference=ref)[-1].kind == "feedback_received"
    assert world.store.verify_chain().ok


def test_suspended_supporters_get_no_feedback_mail(world: World) -> None:
    """The sweep skips a suspended supporter; reinstated, it owes its report again."""
    ref = _active(world, "Paused Network")
    world.life.suspend(ref, actor="commission", reason="inactive")
    world.clock.now = add_months(T0, 13)
    assert world.life.sweep().due == [] and world.life.owed() == []
    world.life.reinstate(ref, actor="commission")
    assert world.life.sweep().due == [ref]


def _tokens(world: World) -> list[Token]:
    with Session(world.store.engine) as session:
        return list(session.exec(select(Token)))


def _sweep_link(world: World, reference: str) -> str:
    """Run the sweep; the raw token of the reminder's link (also what the office sees)."""
    swept = world.life.sweep()
    assert swept.reminded == [reference]
    return swept.links[reference].rsplit("/", 2)[1]


def test_cli_profile_publish_suspend_reinstate_feedback(tmp_path: Path) -> None:
    """The commands of SPEC §8 over a home folder; `audit verify` still passes."""
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli_app, ["--home", str(tmp_path), *args])
        return result.exit_code, result.stdout + result.stderr

    settings = load_settings(tmp_path)
    store = Store(settings.database_url)
    store.ensure_schema()
    ref = make_signed_in_home(store, settings.archive, "CLI Network", "SE")
    code, out = cli("profile", ref, "--by", "anna", "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["reference"] == ref and shown["state"] == "profile_created"
    token = shown["link"].rsplit("/", 2)[1]
    assert cli("publish", ref)[0] == 1  # not completed yet
    Lifecycle(store, settings).submit_profile(token, PROFILE_FORM)
    code, out = cli("publish", ref, "--send-back", "Please add a contact page.")
    assert code == 0 and "sent back" in out
    profile = Lifecycle(store, settings).profile_of(ref)
    assert profile is not None and profile.status == "sent_back"
    new_token = out.strip().rsplit("/", 2)[1] if "link" in out else None
    assert new_token, out
    Lifecycle(store, settings).submit_profile(new_token, PROFILE_FORM)
    assert cli("publish", ref, "--by", "anna")[0] == 0
    code, out = cli("suspend", ref)
    assert code == 2 and "--reason" in out
    code, out = cli("suspend", ref, "--reason", "inactive")
    assert code == 0 and "suspended" in out
    assert cli("suspend", ref, "--reason", "again")[0] == 1
    assert cli("reinstate", ref)[0] == 0
    code, out = cli("feedback", "--overdue", "--json")
    assert code == 0 and json.loads(out) == []
    events = store.events(reference=ref)
    assert [(e.actor, e.to_state) for e in events if e.to_state][-3:] == [
        ("anna", "active"), ("commission", "suspended"), ("commission", "active")
    ]  # fmt: skip
    code, out = cli("audit", "verify")
    assert code == 0, out


def test_a_running_engine_sends_the_links_that_fell_due(database_url: str, tmp_path: Path) -> None:
    """`consentflow run` sweeps when it starts (then hourly): a report that fell due while
    no engine ran gets its link, once, even with two engines."""
    import threading

    from tests.web.conftest import wait_for
    from workflow.engine import Engine

    home = tmp_path / "home"
    home.mkdir()
    settings = load_settings(home, database={"url": database_url})
    store = Store(database_url)
    store.ensure_schema()
    past = Clock(datetime.now(UTC) - timedelta(days=400))
    life = Lifecycle(store, settings, clock=past)
    ref = make_signed(store, "Engine Swept Network")
    link = life.create_profile(ref, actor="anna")
    life.submit_profile(link.token, PROFILE_FORM)
    life.publish(ref, actor="anna")

    def due() -> list[EventRow]:
        return [e for e in store.events(reference=ref) if e.kind == "feedback_due"]

    runs = []
    for _ in range(2):
        engine = Engine(settings)
        stop = threading.Event()
        thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
        thread.start()
        runs.append((engine, stop, thread))
    try:
        assert wait_for(lambda: bool(due()))
        assert wait_for((home / "inbox" / ".processing").is_dir)
    finally:
        for engine, stop, thread in runs:
            stop.set()
            thread.join(10)
            engine.close()
    assert len(due()) == 1 and due()[0].actor == "system"
    assert [owed.reference for owed in Lifecycle(store, settings).owed()] == [ref]


def test_readme_walkthrough_goes_on_to_profile_publish_and_the_list() -> None:
    """The README's walkthrough continues after the signature (issue 19)."""
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Five-minute walkthrough", 1)[1].split("\n## ", 1)[0]
    for words in ("consentflow profile", "consentflow publish", "--send-back", "/supporters",
                  "consentflow suspend", "reinstate", "feedback --overdue"):  # fmt: skip
        assert words in section, words
