import os
import sys
from pathlib import Path

# TensorFlow prints C++ log lines at import unless this is set first.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The tests share small models through tf_models.py (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))
