"""consentflow's benchmark: ``python -m bench [--quick]`` (see ``bench/__main__.py``)."""
