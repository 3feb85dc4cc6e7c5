"""The messages of a supporter's life (SPEC §11, §12), as kinds of the notification outbox.

:mod:`workflow.notifications` (issue 18) owns the outbox and its sender; this module
registers its own kinds there and queues them in the caller's transaction, so a message
exists if and only if the step that causes it was committed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlmodel import Session

from workflow.notifications import applicant_address, enqueue, register_kind
from workflow.store import Application

log = logging.getLogger("consentflow.lifecycle")

#: kind -> (subject per language, plain text per language); str.format over the context.
KINDS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "profile_invitation": (
        {
            "en": "{reference}: complete your Covenant Supporter profile",
            "fi": "{reference}: täydennä Covenant-tukijaprofiilisi",
        },
        {
            "en": "Dear {org_name},\n\nyour consent is signed. Please complete your public "
            "profile: the services you offer, in each language you offer them in, a contact "
            "for members and your website:\n\n{link}\n\nThe link is valid until {expires}.",
            "fi": "Hyvä {org_name},\n\nsuostumuksenne on allekirjoitettu. Täydentäkää julkinen "
            "profiilinne: tarjoamanne palvelut kullakin kielellä, yhteystieto jäsenille ja "
            "verkkosivusto:\n\n{link}\n\nLinkki on voimassa {expires} asti.",
        },
    ),
    "profile_sent_back": (
        {
            "en": "{reference}: your profile needs a change",
            "fi": "{reference}: profiilinne kaipaa muutosta",
        },
        {
            "en": "Dear {org_name},\n\nthe office asks you to change your profile before it is "
            "published:\n\n{comment}\n\n{link}\n\nThe link is valid until {expires}.",
            "fi": "Hyvä {org_name},\n\ntoimisto pyytää muuttamaan profiilia ennen julkaisua:"
            "\n\n{comment}\n\n{link}\n\nLinkki on voimassa {expires} asti.",
        },
    ),
    "profile_published": (
        {
            "en": "{reference}: you are listed as a Covenant Supporter",
            "fi": "{reference}: olette nyt Covenant-tukijoiden listalla",
        },
        {
            "en": "Dear {org_name},\n\nyour profile is published: {list_url}",
            "fi": "Hyvä {org_name},\n\nprofiilinne on julkaistu: {list_url}",
        },
    ),
    "supporter_suspended": (
        {
            "en": "{reference}: your Covenant Supporter status is suspended",
            "fi": "{reference}: Covenant-tukijan asemanne on keskeytetty",
        },
        {
            "en": "Dear {org_name},\n\nthe European Commission has suspended your status as "
            "a Covenant Supporter, for this reason:\n\n{reason}\n\nYou are no longer listed.",
            "fi": "Hyvä {org_name},\n\nEuroopan komissio on keskeyttänyt asemanne "
            "Covenant-tukijana seuraavasta syystä:\n\n{reason}\n\nEtte enää ole listalla.",
        },
    ),
    "supporter_reinstated": (
        {
            "en": "{reference}: your Covenant Supporter status is restored",
            "fi": "{reference}: Covenant-tukijan asemanne on palautettu",
        },
        {
            "en": "Dear {org_name},\n\nyour status as a Covenant Supporter is restored and you "
            "are listed again.",
            "fi": "Hyvä {org_name},\n\nasemanne Covenant-tukijana on palautettu ja olette "
            "taas listalla.",
        },
    ),
    "feedback_due": (
        {
            "en": "{reference}: your feedback report is due",
            "fi": "{reference}: palauteraporttinne on ajankohtainen",
        },
        {
            "en": "Dear {org_name},\n\nplease tell us what your members did since they joined "
            "the Covenant, and which services you offered:\n\n{link}\n\nPlease answer by "
            "{late_after}.",
            "fi": "Hyvä {org_name},\n\nkertokaa, mitä jäsenenne ovat tehneet liityttyään "
            "Covenantiin ja mitä palveluja tarjositte:\n\n{link}\n\nVastatkaa {late_after} "
            "mennessä.",
        },
    ),
    "feedback_reminder": (
        {
            "en": "{reference}: reminder, your feedback report is owed",
            "fi": "{reference}: muistutus, palauteraporttinne puuttuu",
        },
        {
            "en": "Dear {org_name},\n\nyour feedback report, due on {due}, has not arrived "
            "yet:\n\n{link}",
            "fi": "Hyvä {org_name},\n\npalauteraporttinne (määräpäivä {due}) ei ole vielä "
            "saapunut:\n\n{link}",
        },
    ),
}

for _kind, (_subject, _text) in KINDS.items():
    register_kind(_kind, subject=_subject, text=_text, html=None)


def send(
    session: Session,
    *,
    app: Application | Addressee,
    kind: str,
    context: Mapping[str, Any],
) -> bool:
    """Queue one message to the supporter in the caller's transaction; ``False`` when its
    EOI gave no usable address (the office still has the link: the commands print it)."""
    assert kind in KINDS, kind
    # applicant_address reads the EOI's fields only: an Addressee stands in for the row.
    to = applicant_address(cast(Application, app))
    if to is None:
        log.info("%s: message %s not queued (no usable contact address)", app.reference, kind)
        return False
    enqueue(
        session,
        application_id=app.id,
        kind=kind,
        to=to,
        lang=app.lang if app.lang in KINDS[kind][0] else "en",
        context={key: str(value) for key, value in context.items()},
    )
    return True


@dataclass(frozen=True)
class Addressee:
    """What a message needs of an application, without loading (or building) its row."""

    id: int
    reference: str
    org_name: str
    lang: str
    fields: dict[str, Any]
