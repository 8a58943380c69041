import sys
from pathlib import Path

# The test models import by plain name (jax_models), also from 'module:callable' references.
sys.path.insert(0, str(Path(__file__).parent))
