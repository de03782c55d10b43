"""The script the page's Streamlit server runs (each run of the page), in place of lightning-app's own
``lightning_app/frontend/streamlit_base.py``: the same, after the fixes that must come before
lightning_app is imported (``lean_imports``: without it the page's process imports PyTorch).
"""

import sys
from pathlib import Path

_PROJECT = str(Path(__file__).resolve().parents[2])
if _PROJECT not in sys.path:
    sys.path.insert(0, _PROJECT)

from components import fixes  # noqa: E402
from components.fixes import lean_imports  # noqa: E402

fixes.apply(lean_imports.FIXES)

from lightning_app.frontend.streamlit_base import _main  # noqa: E402

_main()
