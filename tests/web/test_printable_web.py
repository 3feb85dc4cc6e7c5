"""The dashboard's plain-text cells cannot show a fake log line (issue 15).

The log's reason column, the document names and the live stream keep their
``white-space: pre-wrap``: a file name holding a newline would print a second, made-up
row inside the cell. They show the name through `workflow.printable` instead.
"""

from __future__ import annotations

import json
from contextlib import closing

from tests.eoi_files import filled_eoi
from tests.test_printable import EVIL_NAME, FAKE
from tests.web.conftest import Site


def test_log_page_application_page_and_live_stream_escape_the_name(site: Site) -> None:
    """The evil file's name shows escaped on the log page, the application's page and in
    the live stream; the JSON API keeps it exact."""
    site.drop(EVIL_NAME, filled_eoi(org_name="Printable Web Network"))
    reference = site.application_of("Printable Web Network")
    escaped = "eoi.pdf\\n" + FAKE
    with closing(site.client("viewer")) as client:
        for path in ("/office/log", f"/office/applications/{reference}"):
            html = client.get(path).text
            assert escaped in html, path
            assert "\n" + FAKE not in html and "\x1b" not in html, path

        found = None
        with client.stream("GET", "/office/log/stream", params={"after": "0"}) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event["reference"] == reference and event["kind"] == "received":
                        found = event
                        break
        assert found is not None
        assert escaped in found["reason"]
        assert "\n" not in found["reason"]

        api = client.get(f"/api/applications/{reference}").json()
        assert any(EVIL_NAME in event["reason"] for event in api["events"])
