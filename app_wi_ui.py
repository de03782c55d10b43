"""Sweeps with its browser UI: `lightning_app run app app_wi_ui.py`, then press Run at /view."""

from lightning_app import LightningApp

from components import HPOFlow
from sweeps.startup import start_or_exit

app = LightningApp(HPOFlow(start_or_exit(), with_ui=True))
