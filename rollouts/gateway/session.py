"""One conversation through the gateway: its requests become the Turns of one Trajectory.

The first request's messages are rendered whole; every later request must repeat the messages
the session has seen and the replies it returned, and what it adds after them is appended to the
ids the engine saw (`agent.chat.Conversation`), so the recorded row is token-exact however the
client rebuilds its message list. A client that rewrites the history it was given is handled
per `rollout.template_mismatch`: `fail` refuses the request and fails the episode, `keep` goes
on from the recorded ids (the model sees what it saw before, not the rewrite) and records where
the client's history parted from it (`info["history_rewrite"]`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from ...agent.chat import ChatFormatter, Conversation, TemplateError, TemplateMismatch
from ...agent.engines.base import ChatPrompt, Completion, SamplingParams
from ..episode import EpisodeSettings, _token_versions
from ..trajectory import Trajectory, Turn
from .errors import GatewayError, invalid
from .replies import assistant_message, completion_body, finish_reason, token_logprobs
from .request import ChatRequest, normalise_message

# The policy behind a session: the engine (RL, evaluation) or an expert (demonstrations).
Policy = Callable[[ChatPrompt, SamplingParams], Awaitable[Completion]]


class Formatters:
    """One `ChatFormatter` per tool list, built on first use (building one plays a probe)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._built: dict[str, ChatFormatter] = {}

    def get(self, request: ChatRequest) -> ChatFormatter:
        key = request.tools_key
        if key not in self._built:
            try:
                self._built[key] = ChatFormatter(self.tokenizer, tools=request.tools)
            except TemplateError as exc:
                raise invalid(f"the policy's chat template cannot take these tools: {exc}",
                              param="tools", code="template_error") from None
        return self._built[key]


class GatewaySession:
    """The record of one conversation; `complete` answers its requests one at a time."""

    def __init__(self, key: str, *, policy: Policy, formatters: Formatters,
                 settings: EpisodeSettings, trajectory: Trajectory, seed: int | None = None,
                 on_turn: Callable[[Turn], None] | None = None) -> None:
        self.key = key
        self.policy, self.formatters, self.settings = policy, formatters, settings
        self.trajectory = trajectory
        self.seed = seed
        self.on_turn = on_turn
        self.conversation: Conversation | None = None
        self.tools_key: str | None = None
        self.sent: list[dict[str, Any]] = []  # what the client has seen, replies included
        self.pending: list[int] = []  # the last reply's ids, appended once the next request comes
        self.busy = False
        self.closed = False
        self.stopped: str | None = None  # why the session takes no more requests
        self.generated = 0
        self.crash: BaseException | None = None  # an engine failure, for the caller to raise

    async def complete(self, request: ChatRequest) -> dict[str, Any]:
        """The `chat.completion` answering `request`; a GatewayError when it is refused."""
        if self.closed:
            raise GatewayError(410, f"session {self.key!r} is closed: its episode has ended",
                               code="session_closed")
        if self.busy:  # one conversation, one request at a time: its turns are a sequence
            raise GatewayError(409, f"session {self.key!r} already has a request in flight; a "
                               "session is one conversation, answered one request at a time "
                               "(give each concurrent conversation its own session)",
                               code="session_busy")
        if self.stopped is not None:
            raise invalid(f"session {self.key!r} takes no more requests: {self.stopped}",
                          code="session_stopped")
        self.busy = True
        try:
            return await self._complete(request)
        finally:
            self.busy = False

    def close(self) -> Trajectory:
        """End the session; its trajectory, with what the conversation recorded."""
        self.closed = True
        conversation, info = self.conversation, self.trajectory.info
        if conversation is not None and conversation.rewrite is not None:
            info["template_rewrite"] = conversation.rewrite.turn
        if conversation is not None and conversation.retokenized is not None:
            info["retokenized"] = conversation.retokenized.turn
        return self.trajectory

    # ----------------------------------------------------------------------------- internals

    async def _complete(self, request: ChatRequest) -> dict[str, Any]:
        s = self.settings
        self._check_sampling(request)
        formatter = self.formatters.get(request)
        if self.conversation is None:
            self._start(formatter, request)
        else:
            self._extend(request)
        ids = self.conversation.ids
        used = len(ids) if s.mode == "full_trajectory" else self.generated
        budget = min(s.max_tokens_per_turn, request.max_tokens or s.max_tokens_per_turn,
                     s.max_episode_tokens - used)
        if budget < 1:
            self._stop("max_episode_tokens",
                       f"the episode's token budget (rollout.max_episode_tokens="
                       f"{s.max_episode_tokens}) is spent")
            raise invalid(self.stopped, code="context_length_exceeded")
        turn_index = len(self.trajectory.turns)
        seed = self.seed * 1000 + turn_index if self.seed is not None else request.seed
        params = replace(s.sampling, max_tokens=budget, seed=seed,
                         stop=tuple(dict.fromkeys((*s.sampling.stop, *request.stop))))
        started = time.perf_counter()
        completion = await self.policy(ChatPrompt(ids, self.conversation.messages), params)
        if completion.finish_reason == "abort":
            raise GatewayError(503, "the engine aborted the request (it is closing or asleep)",
                               code="engine_aborted")
        if not completion.token_ids:
            too_long = completion.info.get("prompt_too_long")
            self._stop("prompt_too_long" if too_long else "empty",
                       "the conversation no longer fits the engine's context" if too_long
                       else "the engine returned no tokens")
            raise invalid(self.stopped, code="context_length_exceeded" if too_long
                          else "empty_completion")
        completion = _within(completion, budget)
        return self._record(request, formatter, completion, ids, started)

    def _start(self, formatter: ChatFormatter, request: ChatRequest) -> None:
        try:
            self.conversation = Conversation(formatter, request.messages,
                                             on_mismatch=self.settings.template_mismatch)
        except TemplateError as exc:
            raise invalid(f"the policy's chat template cannot render these messages: {exc}",
                          param="messages", code="template_error") from None
        self.tools_key = request.tools_key
        self.trajectory.prompt_ids = list(self.conversation.ids)

    def _extend(self, request: ChatRequest) -> None:
        """Append what the request adds after the last reply to the recorded ids."""
        s, turns = self.settings, self.trajectory.turns
        if len(turns) >= s.max_turns:
            self._stop("max_turns", f"the episode's turn budget (rollout.max_turns={s.max_turns}) "
                       "is spent")
            raise invalid(self.stopped, code="max_turns")
        new = self._new_messages(request)
        try:
            turns[-1].observation_ids = self.conversation.add_turn(self.pending, new)
        except TemplateError as exc:  # TemplateMismatch included: template_mismatch=fail
            self._stop("template_mismatch" if isinstance(exc, TemplateMismatch)
                       else "template_error", str(exc), failed=True)
            raise invalid(str(exc), param="messages", code=self.trajectory.info["stop"]) from None
        turns[-1].observation = "\n".join(m["content"] for m in new)

    def _new_messages(self, request: ChatRequest) -> list[dict[str, Any]]:
        """The messages after the last reply; a rewritten history is handled per policy."""
        seen = self.sent
        at = next((i for i, (a, b) in enumerate(zip(seen, request.messages)) if not _same(a, b)),
                  None)
        if at is None and request.tools_key != self.tools_key:
            at = -1  # the tool list is part of the prompt
        if at is None and len(request.messages) < len(seen):
            at = len(request.messages)
        if at is None:
            if len(request.messages) == len(seen):
                raise invalid("the request adds nothing after the last reply: send the tool "
                              "results or the next user message", param="messages")
            return request.messages[len(seen):]
        where = "the tool list" if at == -1 else f"message {at}"
        evidence = (f"{where} differs from what session {self.key!r} recorded (turn "
                    f"{len(self.trajectory.turns)}): {_describe(seen, request.messages, at)}")
        if self.settings.template_mismatch == "fail":
            self._stop("history_rewrite", evidence, failed=True)
            raise invalid(f"{evidence}; the client rewrote the conversation history, so the "
                          "recorded ids no longer match it (rollout.template_mismatch=fail; "
                          "'keep' goes on from the recorded ids)", param="messages",
                          code="history_rewrite")
        rewrites = self.trajectory.info.setdefault("history_rewrite", [])
        rewrites.append({"turn": len(self.trajectory.turns), "message": at})
        last = max((i for i, m in enumerate(request.messages) if m["role"] == "assistant"),
                   default=-1)
        new = request.messages[last + 1:]
        if last == -1:  # no reply kept at all: its system messages are already in the context
            new = [m for m in new if m["role"] != "system"]
        return new

    def _record(self, request: ChatRequest, formatter: ChatFormatter, completion: Completion,
                ids: list[int], started: float) -> dict[str, Any]:
        s = self.settings
        response = list(completion.token_ids)
        turn = Turn(response_ids=response, response_logprobs=list(completion.logprobs),
                    prompt_ids=list(ids) if s.mode == "per_step" else None,
                    finish_reason=completion.finish_reason, version=completion.version,
                    token_versions=_token_versions(completion),
                    prompt_tokens=completion.prompt_tokens or len(ids),
                    gen_seconds=time.perf_counter() - started)
        text = self.conversation.reply.content(formatter.decode(response))
        names = {t["function"]["name"] for t in request.tools or []} if request.parse_tools \
            else None
        message = assistant_message(text, names)
        turn.action = text
        turn.tool_calls = [{"id": c["id"], "name": c["function"]["name"],
                            "arguments": c["function"]["arguments"]}
                           for c in message.get("tool_calls", [])]
        self.trajectory.turns.append(turn)
        self.generated += len(response)
        self.pending = response
        self.sent = [*request.messages, normalise_message(message, len(request.messages))]
        if self.on_turn is not None:
            self.on_turn(turn)
        logprobs = token_logprobs(formatter.tokenizer, response, turn.response_logprobs) \
            if request.logprobs else None
        return completion_body(message, model=request.model,
                               reason=finish_reason(message, completion.finish_reason),
                               prompt_tokens=len(ids), completion_tokens=len(response),
                               logprobs=logprobs)

    def _check_sampling(self, request: ChatRequest) -> None:
        # The trainer recomputes logprobs at the rollout's temperature: another one would make
        # every importance ratio wrong, so it is refused rather than ignored.
        sampling = self.settings.sampling
        for key, ours in (("temperature", sampling.temperature), ("top_p", sampling.top_p)):
            asked = getattr(request, key)
            if asked is not None and abs(asked - ours) > 1e-9:
                raise invalid(f"{key}={asked:g}: this gateway samples at {key}={ours:g}, the "
                              f"rollout's (the trainer's logprobs assume it); leave {key} unset",
                              param=key, code="unsupported_value")

    def _stop(self, reason: str, why: str, *, failed: bool = False) -> None:
        self.stopped = why
        self.trajectory.info["stop"] = reason
        if failed:
            self.trajectory.status = "failed"
            self.trajectory.info["error"] = why


def _same(recorded: dict[str, Any], sent: dict[str, Any]) -> bool:
    """Whether the client sent back a message as recorded (tool call ids may be its own)."""
    def key(m: dict[str, Any]) -> tuple:
        calls = [(c["name"], c["arguments"]) for c in m.get("tool_calls", [])]
        return m["role"], m["content"].strip(), m.get("tool_call_id"), calls

    return key(recorded) == key(sent)


def _describe(seen: list[dict], sent: list[dict], at: int) -> str:
    if at == -1:
        return "the request lists other tools than the conversation started with"
    if at >= len(sent):
        return f"the request has {len(sent)} messages, fewer than the {len(seen)} recorded"
    theirs = sent[at]
    ours = seen[at] if at < len(seen) else None
    return f"recorded {_short(ours)}, the request has {_short(theirs)}"


def _short(message: dict[str, Any] | None) -> str:
    if message is None:
        return "nothing"
    calls = [c["name"] for c in message.get("tool_calls", [])]
    return (f"{message['role']} {message['content'][:60]!r}"
            + (f" calling {calls}" if calls else ""))


def _within(completion: Completion, budget: int) -> Completion:
    """A completion cut to `budget` tokens if the engine overran it (a demonstration is kept
    whole: it is what the model should learn)."""
    if len(completion.token_ids) <= budget or completion.info.get("demonstration"):
        return completion
    return replace(completion, token_ids=completion.token_ids[:budget],
                   logprobs=completion.logprobs[:budget], finish_reason="length",
                   token_versions=completion.token_versions[:budget]
                   if completion.token_versions else None,
                   top_logprobs=completion.top_logprobs[:budget]
                   if completion.top_logprobs else None)

