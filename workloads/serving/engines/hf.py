"""Transformers engine: an explicit decode loop with a KV cache, for the tiny model and for
users without vLLM. Requests run one at a time (a lock) in a worker thread, so the event
loop keeps serving health checks and streams while the model computes."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, AsyncIterator

from thinkube.workloads.serving.engines.base import StepChunk, StepParams

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


class TransformersEngine:
    def __init__(
        self,
        model_path: str,
        name: str,
        revision: str | None = None,
        dtype: str = "float32",
        max_model_len: int | None = None,
    ):
        self.model_path, self.name, self.revision, self.dtype = model_path, name, revision, dtype
        self._max_model_len = max_model_len
        self._lock = asyncio.Lock()
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.model: PreTrainedModel | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, revision=self.revision)
        self.model = model = AutoModelForCausalLM.from_pretrained(
            self.model_path, revision=self.revision, dtype=getattr(torch, self.dtype)
        ).eval()
        cfg_len = model.config.max_position_embeddings
        self.max_model_len = min(self._max_model_len or cfg_len, cfg_len)

    async def stream(self, prompt_ids: list[int], params: StepParams) -> AsyncIterator[StepChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def emit(item):
            loop.call_soon_threadsafe(queue.put_nowait, item)

        async with self._lock:
            worker = loop.run_in_executor(None, self._decode, prompt_ids, params, emit, cancel)
            try:
                while True:
                    item = await queue.get()
                    if isinstance(item, BaseException):
                        raise item
                    yield item
                    if item.finish_reason:
                        break
            finally:
                cancel.set()  # a client that went away stops the loop at the next token
                await worker

    def _decode(self, prompt_ids, params: StepParams, emit, cancel: threading.Event) -> None:
        import torch

        try:
            tokenizer, model = self.tokenizer, self.model
            assert tokenizer is not None and model is not None  # start() loads them before requests come
            gen = None
            if params.temperature > 0:
                gen = torch.Generator().manual_seed(params.seed if params.seed is not None else torch.seed())
            vocab = len(tokenizer)
            stop = set(params.stop_token_ids)
            with torch.inference_mode():
                out = model(torch.tensor([prompt_ids]), use_cache=True)
                for n in range(params.max_tokens):
                    logits = out.logits[0, -1].float()
                    logits[vocab:] = float("-inf")  # padded embedding rows are not tokens
                    tok = _pick(logits, params, gen)
                    if tok in stop:
                        emit(StepChunk([], "stop"))
                        return
                    last = n + 1 == params.max_tokens
                    emit(StepChunk([tok], "length" if last else None))
                    if last or cancel.is_set():
                        return
                    out = model(torch.tensor([[tok]]), past_key_values=out.past_key_values, use_cache=True)
            emit(StepChunk([], "length"))  # max_tokens == 0
        except BaseException as e:  # surfaced in the request's coroutine, not lost in a thread
            emit(e)

    async def close(self) -> None:
        self.model = None


def _pick(logits, params: StepParams, gen) -> int:
    import torch

    if params.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_p, idx = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, 0) - sorted_p < params.top_p
        probs = torch.zeros_like(probs).scatter(0, idx[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=gen))
