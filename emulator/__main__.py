"""`python -m emulator`: run the provider emulator in its own process."""

import sys

from emulator.server import main

sys.exit(main())
