import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from plugin_fixtures import pm  # noqa: F401 - the fixture, for every test here
