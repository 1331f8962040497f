"""Credit assignment: advantage estimators as pure functions on arrays, registered by name."""

from . import arpo as _arpo  # noqa: F401  (each estimator module registers itself on import)
from . import critique_grpo as _critique_grpo  # noqa: F401
from . import gigpo as _gigpo  # noqa: F401
from . import grpo as _grpo  # noqa: F401
from . import igpo as _igpo  # noqa: F401
from . import reinforce_pp as _reinforce_pp  # noqa: F401
from . import rloo as _rloo  # noqa: F401
from .arpo import arpo_advantages
from .assign import assign_advantages
from .critique_grpo import critique_grpo_advantages
from .dynamic_sampling import flat_group_fraction, keep_varied_groups, varied_groups
from .gigpo import gigpo_advantages
from .grpo import grpo_advantages
from .igpo import igpo_advantages
from .registry import check_options, compute, get, names, needs, register
from .reinforce_pp import reinforce_pp_advantages
from .rloo import rloo_advantages
from .shaping import apply_invalid_penalty, apply_overlong_penalty, overlong_penalty

__all__ = ["apply_invalid_penalty", "apply_overlong_penalty", "arpo_advantages",
           "assign_advantages", "check_options", "compute", "critique_grpo_advantages",
           "flat_group_fraction", "get",
           "gigpo_advantages", "grpo_advantages", "igpo_advantages", "keep_varied_groups",
           "names", "needs", "overlong_penalty", "register", "reinforce_pp_advantages", "rloo_advantages",
           "varied_groups"]
