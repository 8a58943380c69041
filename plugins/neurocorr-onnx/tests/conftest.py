import sys
from pathlib import Path

# The test modules share the graph builders in onnx_test_models.py.
sys.path.insert(0, str(Path(__file__).parent))
