import sys

from ame.cli import main

sys.exit(main())
