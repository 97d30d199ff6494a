import sys

from spad.runner.main import main

sys.exit(main())
