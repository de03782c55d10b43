"""Sweeps with its browser UI: `lightning_app run app app_wi_ui.py`, then press Run at /view."""

from lightning_app import LightningApp

from components import HPOFlow
from sweeps.config import load_config_or_exit

app = LightningApp(HPOFlow(load_config_or_exit(), with_ui=True))
