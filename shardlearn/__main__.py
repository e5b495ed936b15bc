import sys

from shardlearn.cli import main

sys.exit(main())
