"""Entry point: `python jobs/caption.py MANIFEST [options]`, or through `ray job submit`."""

import sys
from pathlib import Path

# `ray job submit --working-dir .` runs this file from the repository root without
# installing the package; make the repository importable either way.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.run import main

if __name__ == "__main__":
    sys.exit(main())
