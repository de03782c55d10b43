"""The no-op trial that imports nothing to speak of (os, sys and time load with the interpreter): the
case least favourable to a warm fork server, which then saves a subprocess nothing."""

import os
import sys
import time

x = sys.argv[1].partition("=")[2]  # --x=<value>
print(f"loss={x} t={time.time()} slot={os.getppid()}")
