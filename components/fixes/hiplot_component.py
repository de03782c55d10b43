"""Fixes to HiPlot 0.1.33's Streamlit component (the last HiPlot release), applied in the page's process.

The component's JavaScript is served from a fixed copy of HiPlot's bundle, edited with
:data:`BUNDLE_FIXES`; a HiPlot whose bundle does not hold each edited text exactly once keeps
its own component.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from components.fixes import Fix

HIPLOT = "hiplot", "0.1.33"

#: Edits of the component's bundle, each a text found exactly once in it -> its replacement.
#: 1-2. The parallel plot reads its axis order with the rightmost axis first, but saves it (in its
#:      persistent state) leftmost first, and only the axes drawn then: every reload of its data
#:      reversed or scrambled the axes. The mount keeps the order it read (Sweeps' own, for every
#:      axis) and a drag saves the order the way it is read.
#: 3.   A brush reaches the page 400 ms after it is drawn; 50 ms here, so that the page holds the
#:      plot still sooner.
#: 4.   A reload of its data clears the brushes, and trials ending during a drag (or before the page
#:      knew of the brush) cleared it. The component holds new data while a brush is drawn on any
#:      axis, and loads the newest it was sent once the brushes are cleared.
BUNDLE_FIXES = {
    "dimensions:t,order:Array.from(t)}": "dimensions:t}",
    "setState({order:Array.from(t.state.dimensions)})": "setState({order:Array.from(t.state.dimensions).reverse()})",
    "e}.bind(this))}.bind(n),400)": "e}.bind(this))}.bind(n),50)",
    "newExp!=this.state.experimentJson&&this.setState(": (
        "newExp!=this.state.experimentJson&&!Array.from(document.querySelectorAll('.pplot-brush .selection'))"
        ".some(function(e){return e.style.display!=='none'})&&this.setState("
    ),
}

BUNDLE = "hiplot_streamlit.bundle.js"


def built_component() -> Path:
    """HiPlot's own component: its ``index.html`` and bundle."""
    import hiplot

    return Path(hiplot.__file__).parent / "static" / "built" / "streamlit_component"


def fixed_component() -> Path | None:
    """A copy of the component with :data:`BUNDLE_FIXES` (made once, in the temp dir); None if the
    bundle does not hold each edited text exactly once."""
    import hiplot

    fixes = hashlib.sha1(repr(sorted(BUNDLE_FIXES.items())).encode()).hexdigest()[:8]  # a new copy per change
    fixed = Path(tempfile.gettempdir()) / f"sweeps-hiplot-{hiplot.__version__}-{fixes}"
    if (fixed / BUNDLE).exists():
        return fixed
    built = built_component()
    code = (built / BUNDLE).read_text()
    if any(code.count(old) != 1 for old in BUNDLE_FIXES):
        return None
    for old, new in BUNDLE_FIXES.items():
        code = code.replace(old, new)
    staging = Path(tempfile.mkdtemp(dir=tempfile.gettempdir()))
    shutil.copy(built / "index.html", staging / "index.html")
    (staging / BUNDLE).write_text(code)
    try:
        staging.rename(fixed)  # atomic: pages starting at once see a whole copy or none
    except OSError:  # another page made it first
        shutil.rmtree(staging, ignore_errors=True)
    return fixed


def _serve_fixed_bundle() -> None:
    import streamlit.components.v1 as components
    from hiplot.streamlit_helpers import _StreamlitHelpers

    if _StreamlitHelpers.component is not None:
        return
    fixed = fixed_component()
    if fixed is not None:
        _StreamlitHelpers.component = components.declare_component("hiplot", path=str(fixed))


def _pass_streamlit_check() -> None:
    import streamlit as st

    st._is_running_with_streamlit = True


FIXES = (
    Fix(
        *HIPLOT,
        "Experiment.to_streamlit checks st._is_running_with_streamlit, which Streamlit removed in 1.14",
        _pass_streamlit_check,
    ),
    Fix(
        *HIPLOT,
        "the parallel plot reverses its axes on every data reload, and a reload clears a brush being drawn",
        _serve_fixed_bundle,
    ),
)
