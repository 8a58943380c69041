import sys
from pathlib import Path

# The builders import each other by plain module name.
sys.path.insert(0, str(Path(__file__).parent))
