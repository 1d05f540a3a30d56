from .checkpoint import checkpoint_safe_globals, register_checkpoint_safe_globals
from .compat import check_dependencies
from .io import atomic_write_json, atomic_write_text

__all__ = [
    'check_dependencies', 'checkpoint_safe_globals', 'register_checkpoint_safe_globals',
    'atomic_write_json', 'atomic_write_text'
]
