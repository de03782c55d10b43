"""An app that ends by itself, and whose one work ignores SIGTERM: to its app, the same as a work that
missed its SIGTERM (a profiler took it as the signal came)."""

import signal

from lightning_app import LightningApp, LightningFlow, LightningWork

import components  # noqa: F401  (Sweeps' fixes to lightning-app, as the app files apply them)


class IgnoresSigterm(LightningWork):
    def run(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # after Lightning set its handler for this call


class Root(LightningFlow):
    def __init__(self) -> None:
        super().__init__()
        self.work = IgnoresSigterm()

    def run(self) -> None:
        self.work.run()
        if self.work.has_succeeded:
            self.stop()


app = LightningApp(Root())
