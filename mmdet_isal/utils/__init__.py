from .checkpoint import checkpoint_safe_globals, register_checkpoint_safe_globals
from .compat import check_dependencies
from .fileio import atomic_write, atomic_write_json

__all__ = [
    'check_dependencies', 'checkpoint_safe_globals', 'register_checkpoint_safe_globals',
    'atomic_write', 'atomic_write_json'
]
