import sys

from taube.cli.main import main

sys.exit(main())
