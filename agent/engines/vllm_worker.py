"""Runs inside vLLM's worker process (`worker_extension_cls`): loads trainer weights in place.

vLLM mixes this class into its worker, so `self` is the worker. The weights arrive as a
safetensors file written by `VLLMEngine.load_weights` (names and shapes already checked there)
and go through vLLM's own in-place reload, which maps trainer (Hugging Face) names onto vLLM's
fused parameters and re-runs each layer's kernel preparation (on CPU, weights are repacked).
A tied LM head receives no tensor of its own, so its kernel is prepared again from the shared
embedding afterwards. This module must not import vLLM at the top: the trainer side refers to
it only by name.
"""

from __future__ import annotations


class WeightReceiver:
    """Worker-side half of `VLLMEngine.load_weights`."""

    def turnwise_load_weights(self, path: str) -> int:
        """Load the tensors in `path` into the served model; return how many there were."""
        from safetensors.torch import load_file

        tensors = load_file(path)
        self.reload_weights(weights_iterator=iter(tensors.items()), is_checkpoint_format=True)
        model = self.model_runner.model
        head = getattr(model, "lm_head", None)
        method = getattr(head, "quant_method", None)
        if getattr(getattr(model, "config", None), "tie_word_embeddings", False) and method:
            method.process_weights_after_loading(head)
        return len(tensors)
