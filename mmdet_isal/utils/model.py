"""One home for reaching the model inside an mmengine wrapper (DDP and the like)."""
from mmengine.model import is_model_wrapper


def unwrap_model(model):
    """``model.module`` if ``model`` is an mmengine model wrapper (DDP, FSDP, ...), else
    ``model`` itself."""
    return model.module if is_model_wrapper(model) else model
