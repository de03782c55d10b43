"""Sweeps with its browser UI: `lightning run app app_wi_ui.py`, then press Run at /view."""

from lightning_app import LightningApp

from sweeps.startup import start_or_exit

config = start_or_exit()  # one line and exit on a bad config, before anything starts

from components import HPOFlow  # noqa: E402

app = LightningApp(HPOFlow(config, with_ui=True))
