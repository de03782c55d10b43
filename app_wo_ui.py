"""Sweeps headless: `lightning_app run app app_wo_ui.py --open-ui false` runs the sweep and exits."""

from lightning_app import LightningApp

from components import HPOFlow
from sweeps.startup import start_or_exit

app = LightningApp(HPOFlow(start_or_exit(), with_ui=False))
