"""The Lightning side of Sweeps: thin adapters from the Lightning loop to ``sweeps``."""

from components import fixes
from components.fixes import lean_imports

# Before lightning_app is imported: this module is the first the `lightning` command imports.
fixes.apply(lean_imports.FIXES)

from components.fixes import loop, runtime, shutdown, streamlit_page  # noqa: E402

# Before the app is created and any flow or work runs, in every process that imports the components.
fixes.apply((*loop.FIXES, *runtime.FIXES, *shutdown.FIXES, *streamlit_page.IN_APP))

from components.hiplot_flow import HiPlotFlow  # noqa: E402
from components.hpo_flow import HPOFlow  # noqa: E402
from components.objective import ObjectiveWork  # noqa: E402

__all__ = ["HPOFlow", "HiPlotFlow", "ObjectiveWork"]
