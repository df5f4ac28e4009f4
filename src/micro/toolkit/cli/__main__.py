import sys

from micro.toolkit.cli import main

sys.exit(main())
