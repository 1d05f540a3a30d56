"""Loading mmengine checkpoints under torch's ``weights_only=True`` default (torch >= 2.6).

mmengine 0.10 writes non-tensor metadata into every checkpoint: the ``MessageHub`` state with
``HistoryBuffer`` objects holding numpy arrays and scalars, and each buffer's table of
statistics methods (``HistoryBuffer.min`` ...), which pickle stores as
``getattr(HistoryBuffer, 'min')``. torch's safe unpickler refuses those globals, so a plain
``load_from``, ``resume`` or ``load_checkpoint`` fails.

We allow exactly these globals through ``torch.serialization.add_safe_globals``. ``getattr``
itself is never allowed (it would open the way to arbitrary code): the name
``builtins.getattr`` is bound to :func:`statistics_method_getattr`, which returns only a
registered statistics method of ``HistoryBuffer`` and refuses anything else. The protection
stays on: we never pass ``weights_only=False`` nor set ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``,
so a checkpoint that carries any other global is still refused.
"""
import pickle

import numpy as np
import torch


def statistics_method_getattr(obj, name):
    """``getattr`` restricted to ``HistoryBuffer``'s registered statistics methods."""
    from mmengine.logging import HistoryBuffer
    HistoryBuffer()  # mmengine fills the table of statistics methods on first construction
    owner = obj if isinstance(obj, type) else type(obj)
    if (isinstance(owner, type) and issubclass(owner, HistoryBuffer)
            and isinstance(name, str) and name in HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint refused: it asks for getattr({owner.__name__}, {name!r}); mmdet-isal '
        'allows getattr only for HistoryBuffer statistics methods')


def checkpoint_safe_globals():
    """The globals an mmengine 0.10 checkpoint needs, as objects (not strings).

    numpy's reconstruct helpers are taken from ``__reduce__`` so that the list is right for
    numpy 1.x (``numpy.core``) and 2.x (``numpy._core``); numpy 1.x pickles dtypes through
    their numeric ``DType`` classes, numpy 2.x through ``numpy.dtype``.
    """
    from mmengine.logging import HistoryBuffer
    numeric = np.typecodes['AllInteger'] + np.typecodes['AllFloat'] + '?'
    dtype_classes = sorted({type(np.dtype(code)) for code in numeric}, key=lambda c: c.__name__)
    return [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        np.empty(0).__reduce__()[0],       # numpy.(_)core.multiarray._reconstruct
        np.float64(0).__reduce__()[0],     # numpy.(_)core.multiarray.scalar
        *dtype_classes,
        (statistics_method_getattr, 'builtins.getattr'),
    ]


def register_checkpoint_safe_globals():
    """Allow the globals of :func:`checkpoint_safe_globals` in ``torch.load(weights_only=True)``.

    Idempotent; a no-op on torch versions without ``add_safe_globals`` (< 2.4), which do not
    load with ``weights_only`` by default.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return
    known = torch.serialization.get_safe_globals()
    add([g for g in checkpoint_safe_globals() if g not in known])
