"""Sweeps' core: the sweep config, search space, trial bookkeeping and reports.

Nothing here imports Lightning; ``components/`` adapts these to the Lightning loop.
"""
