"""The web application (SPEC §10): the office's dashboard, and room for the public pages.

Imported only by ``consentflow web`` and ``run`` (FastAPI, uvicorn and Jinja2 are not
loaded by the other commands). :func:`workflow.web.app.create_app` builds it.
"""
