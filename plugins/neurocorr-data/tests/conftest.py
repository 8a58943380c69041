import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))  # the core's test models and harness

from plugin_fixtures import pm  # noqa: F401 - the fixture, for every test here
