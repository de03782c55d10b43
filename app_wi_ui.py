"""Sweeps with its browser UI: `lightning run app app_wi_ui.py`, then press Run at /view."""

# First: its fixes precede lightning_app's import, in the works' processes too (they run this file again).
from components import HPOFlow

# isort: split
from lightning_app import LightningApp

from sweeps.startup import start_or_exit

config = start_or_exit()  # one line and exit on a bad config, before anything starts

app = LightningApp(HPOFlow(config, with_ui=True))
