import sys

from micro.toolkit.bot.cli import main

sys.exit(main())
