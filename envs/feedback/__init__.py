"""Feedback turns: a wrapper that lets an agent answer again after a wrong final answer.

Any environment whose final step reports the answer it read (`info["answer"]`, as `ToolEnv`
does: search_qa, math_code, a user's ToolEnv) can be wrapped. After a wrong answer the wrapper
does not end the episode: it answers with a feedback observation and the agent tries again,
up to `max_attempts` answers. Two kinds of feedback:

- `try_again` (UFO, Liu et al. 2025): the same short unary text after every wrong answer.
- `critique` (Critique-GRPO, Zhang et al. 2025): a critique of the wrong answer, written by a
  rule from the verifier's reason (format, wrong value, missing evidence) or by a model.

The episode's reward is the reward of the answer that ended it, times `decay ** (attempt - 1)`,
minus UFO's repetition penalty when asked for; wrong answers before it earn 0. docs/feedback.md.
"""

from __future__ import annotations

from .critics import Critic, CritiqueRequest, RuleCritic, make_critic
from .env import FeedbackEnv, FeedbackMark, FeedbackSettings, attempt_reward
from .stats import FeedbackStats
from .suite import FeedbackSuite

__all__ = ["Critic", "CritiqueRequest", "FeedbackEnv", "FeedbackMark", "FeedbackSettings",
           "FeedbackStats", "FeedbackSuite", "RuleCritic", "attempt_reward", "make_critic"]
