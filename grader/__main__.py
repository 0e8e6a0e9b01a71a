"""``python -m grader`` is ``tconv-grader``."""

import sys

from grader.cli import main

sys.exit(main())
