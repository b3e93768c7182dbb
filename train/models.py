"""Tokenizer + model from the ``model`` config — shared by ``train/`` and ``eval/``.

Three sources: a hub id or local directory (``from_pretrained``), the embedded Gemma-3 270M
that a PyPI package ships as GGUF (converted once into a cached HF directory), and a tiny
random Gemma-3 for tests. Gemma-3's quirks are handled here and nowhere else:

* bfloat16 on CUDA, never float16 (activations overflow); float32 on CPU; full fine-tuning
  keeps float32 master weights and computes in bfloat16 under autocast (:func:`training_dtype`);
* generation stops on both ``<eos>`` and ``<end_of_turn>`` (the chat template ends a turn
  with ``<end_of_turn>``; base checkpoints only list ``<eos>``);
* the chat template already writes ``<bos>``: chat text is encoded without special tokens
  so there is never a second BOS (:func:`encode_chat`);
* generation pads on the left (:func:`generation_tokenizer`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import replace
from pathlib import Path

from .config import ConfigError, ModelConfig

END_OF_TURN = "<end_of_turn>"
_TINY_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", END_OF_TURN]


class ModelNotFound(Exception):
    """One clear line: what was looked for and which config value to change."""


def official_chat_template() -> str:
    """The official Gemma-3 chat template, as TRL ships it (``trl/chat_templates/gemma3.jinja``)."""
    from importlib.resources import files

    return files("trl").joinpath("chat_templates/gemma3.jinja").read_text(encoding="utf-8")


def resolve_dtype(cfg: ModelConfig, device: str | None = None):
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, cfg.dtype)


def training_dtype(cfg: ModelConfig, peft: str, device: str):
    """The dtype a training run loads its weights in. LoRA / QLoRA freeze the base, so it stays in
    the compute dtype. Full fine-tuning updates every weight: AdamW's steps below half a bf16 step
    would round to nothing in bf16 weights, so the master weights are float32 and the Trainer's
    bf16 autocast does the arithmetic (TRL's own loader does the same; FSDP2 upcasts anyway, so DDP
    and FSDP now train the same numbers)."""
    import torch

    return torch.float32 if peft == "none" else resolve_dtype(cfg, device)


def load_tokenizer(cfg: ModelConfig):
    """The tokenizer alone (cheap for hub/local; converts the GGUF once)."""
    cfg.check()
    if cfg.source == "tiny":
        tok = _tiny_tokenizer()
    else:
        tok = _from_pretrained_tokenizer(_local_dir(cfg), cfg)
    return _prepare_tokenizer(tok, cfg)


def load_model(cfg: ModelConfig, device: str | None = None, tokenizer=None, dtype=None, **kwargs):
    """(tokenizer, model) for the config, in ``dtype`` (default: :func:`resolve_dtype`).
    ``kwargs`` go to ``from_pretrained`` (e.g. quantization)."""
    cfg.check()
    tok = tokenizer or load_tokenizer(cfg)
    dtype = resolve_dtype(cfg, device) if dtype is None else _torch_dtype(dtype)
    if cfg.source == "tiny":
        model = _tiny_model(cfg, tok).to(dtype)
    else:
        from transformers import AutoModelForCausalLM

        where = _local_dir(cfg)
        try:
            model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kwargs)
        except OSError as e:
            raise ModelNotFound(f"model weights not found in {where} ({_first_line(e)}); set model.path") from None
    _init_token_rows(model, token_rows(tok, cfg))
    if device:
        model.to(device)
    _prepare_generation(model, tok)
    return tok, model


def token_rows(tok, cfg: ModelConfig) -> dict[int, int]:
    """``model.token_init`` as ids (target -> source); a name that is not one token is a config error."""

    def one(t: str) -> int:
        i = tok.convert_tokens_to_ids(t)
        if not isinstance(i, int) or i == tok.unk_token_id or tok.convert_ids_to_tokens(i) != t:
            raise ConfigError(f"model.token_init: {t!r} is not one token of {cfg.name}'s vocabulary")
        return i

    return {one(t): one(s) for t, s in (cfg.token_init or {}).items()}


def _init_token_rows(model, rows: dict[int, int]) -> None:
    """Copy embedding rows (input, and output when untied). Written here because neither transformers
    nor peft re-initialises an existing token: a base model's chat tokens were never trained, and
    Gemma-3 270M's ``<end_of_turn>`` is the same vector as hundreds of unused tokens (cosine > 0.99),
    so no adapter can make it likely on its own (the model never learns to stop)."""
    if not rows:
        return
    import torch

    with torch.no_grad():
        layers = {id(m.weight): m.weight for m in (model.get_input_embeddings(), model.get_output_embeddings())}
        for w in layers.values():
            for target, source in rows.items():
                w[target] = w[source]


def weights_dir(cfg: ModelConfig) -> Path | None:
    """The directory the model's weights are read from; None for the tiny model (built in memory)."""
    return None if cfg.source == "tiny" else Path(_local_dir(cfg))


def _torch_dtype(dtype):
    import torch

    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def qlora_quantization(compute_dtype="bfloat16") -> dict:
    """``from_pretrained`` kwargs for QLoRA: a 4-bit NF4, double-quantised base computing in bf16."""
    from transformers import BitsAndBytesConfig

    return {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=_torch_dtype(compute_dtype),
    )}


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__


# --- sources ----------------------------------------------------------------------------------


def _local_dir(cfg: ModelConfig) -> str:
    """A directory (or cached hub id) that ``from_pretrained`` can read without surprises."""
    if cfg.source == "gguf":
        return str(convert_gguf(cfg))
    if cfg.source == "warmup" and not cfg.path:
        return str(build_warmup(cfg))
    path = os.path.expanduser(cfg.path)
    if Path(path).is_dir():
        return path
    if path.startswith((".", "/", "~")) or os.sep in path and not _looks_like_hub_id(cfg.path):
        raise ModelNotFound(
            f"model '{cfg.name}': no directory at model.path={cfg.path}; point model.path at a local "
            "model directory, or run the embedded model with model=gemma3-270m"
        )
    return _hub_snapshot(cfg)


def _looks_like_hub_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "/", "~"))


def _hub_snapshot(cfg: ModelConfig) -> str:
    """Use the local HF cache if it has the model; download only when the hub is reachable.

    transformers retries an unreachable hub for about a minute before failing with a long
    traceback; an offline machine gets one clear line at once instead.
    """
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(cfg.path, local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError, or a gated/unknown repo)
        pass
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not _hub_reachable():
        raise ModelNotFound(
            f"model '{cfg.name}' ({cfg.path}) is not in the local Hugging Face cache and the hub is not "
            "reachable; set model.path to a local directory, or run the embedded model with model=gemma3-270m"
        )
    try:
        return snapshot_download(cfg.path, allow_patterns=["*.json", "*.safetensors", "*.model", "*.jinja", "*.txt"])
    except Exception as e:
        raise ModelNotFound(
            f"model '{cfg.name}': could not download {cfg.path} ({_first_line(e)}); for gated models such as "
            "Gemma accept the license on the hub and set HF_TOKEN in the environment, or set model.path "
            "to a local directory"
        ) from None


def _hub_reachable(host: str = "huggingface.co") -> bool:
    endpoint = os.environ.get("HF_ENDPOINT")
    if endpoint:
        host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":")[0]
    try:
        socket.getaddrinfo(host, 443)
        with socket.create_connection((host, 443), timeout=3):
            return True
    except OSError:
        return False


def _from_pretrained_tokenizer(where: str, cfg: ModelConfig):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(where)
    except OSError as e:
        raise ModelNotFound(f"tokenizer for model '{cfg.name}' not found in {where} ({_first_line(e)}); set model.path") from None


def convert_gguf(cfg: ModelConfig) -> Path:
    """The embedded GGUF as a cached HF directory: ``<cache_dir>/<name>/`` (converted once).

    The GGUF tokenizer conversion takes about half a minute and the weights are
    de-quantised on load, so this is done once, under a file lock (parallel test workers
    and DDP ranks wait for the first), into a temporary directory renamed into place.
    """
    from filelock import FileLock

    out = Path(os.path.expanduser(cfg.cache_dir)) / cfg.name
    if (out / "config.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if (out / "config.json").exists():
            return out
        try:
            import importlib

            pkg = importlib.import_module(cfg.path)
        except ImportError:
            raise ModelNotFound(
                f"model '{cfg.name}': the Python package '{cfg.path}' that ships the GGUF is not installed; "
                f"run `make install` (or pip install {cfg.path.replace('_', '-')})"
            ) from None
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = Path(pkg.assemble(Path(os.path.expanduser(cfg.cache_dir)) / "gguf" / pkg.MODEL_NAME))
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
        # The de-quantised model still carries its GGUF quantization_config, which makes it
        # unserialisable; copy the weights into a clean model of the same config.
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        clean = AutoModelForCausalLM.from_config(config)
        clean.load_state_dict(model.state_dict())
        if tok.chat_template is None:
            tok.chat_template = official_chat_template()
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        clean.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(out)
    return out


ROOT = Path(__file__).resolve().parents[1]
BUILD_INFO = "sftdpo-build.json"


def warmup_inputs(cfg: ModelConfig) -> dict:
    """What a warm-up build depends on: its overrides and the sha256 of the files they name
    (the experiment and data configs and the data). The cached model is rebuilt when it changes."""
    import hashlib

    digest = hashlib.sha256(json.dumps(cfg.build).encode())
    for path in sorted(ROOT.glob("conf/experiment/*.yaml")) + sorted(ROOT.glob("conf/data/*.yaml")):
        if path.stem in " ".join(cfg.build):
            digest.update(path.read_bytes())
    for path in sorted((ROOT / "data" / "warmup").glob("*.jsonl")):
        digest.update(path.read_bytes())
    return {"build": list(cfg.build), "sha256": digest.hexdigest()}


def build_warmup(cfg: ModelConfig) -> Path:
    """The warm-up chat model as a cached HF directory, ``<cache_dir>/<name>/``, built on first use:
    ``python -m train <build>`` (SFT with LoRA on an instruction set), then the adapter merged into
    full weights (peft's ``merge_and_unload``) so every arm starts from the same plain model.
    Rebuilt when its inputs change (:func:`warmup_inputs`); built once under a file lock."""
    import subprocess
    import sys
    import time

    from filelock import FileLock

    out = Path(os.path.expanduser(cfg.cache_dir)) / cfg.name
    inputs = warmup_inputs(cfg)

    def current() -> bool:
        try:
            return json.loads((out / BUILD_INFO).read_text())["sha256"] == inputs["sha256"]
        except (OSError, ValueError, KeyError):
            return False

    if current():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if current():
            return out
        run = out.with_name(out.name + ".run")
        print(f"model {cfg.name}: building it once into {out} (python -m train {' '.join(cfg.build)}, then the "
              "adapter merged into the weights); it is cached for every later run", file=sys.stderr, flush=True)
        started = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "train", *cfg.build, f"out_dir={run.parent}", f"name={run.name}",
                            "overwrite=true"], cwd=ROOT)
        if r.returncode:
            raise ModelNotFound(f"model '{cfg.name}': building it failed (python -m train {' '.join(cfg.build)} "
                                f"exited {r.returncode}; its log is in {run}/train.log)")
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        merge_adapter(run, tmp)
        seconds = round(time.perf_counter() - started, 1)
        (tmp / BUILD_INFO).write_text(json.dumps({**inputs, "seconds": seconds, "from_run": str(run)}, indent=1) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        print(f"model {cfg.name}: built in {seconds / 60:.1f} min", file=sys.stderr, flush=True)
    return out


def merge_adapter(run: Path, dest: Path) -> None:
    """A LoRA run directory's adapter merged into its base model's weights, saved to ``dest``
    (full weights, tokenizer and chat template: an ordinary model directory)."""
    import torch
    from omegaconf import OmegaConf
    from peft import PeftModel

    from .config import structured

    base = structured(ModelConfig, OmegaConf.load(run / "config.yaml").model)
    tok, model = load_model(replace(base, trim_vocab=False), "cpu")
    merged = PeftModel.from_pretrained(model, str(run)).merge_and_unload()
    merged.to(torch.float32).save_pretrained(dest)
    tok.save_pretrained(dest)


def _tiny_tokenizer():
    """A byte-level tokenizer with Gemma's special tokens: any text, ~262 ids, no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {t: i for i, t in enumerate(_TINY_SPECIALS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", END_OF_TURN],
    )
    tok.chat_template = official_chat_template()
    return tok


def _tiny_model(cfg: ModelConfig, tok):
    """A random Gemma-3 text model from ``cfg.tiny`` (seeded, so every load is identical)."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    opts = dict(cfg.tiny)
    seed = int(opts.pop("seed", 0))
    config = Gemma3TextConfig(
        vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, **opts,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Gemma3ForCausalLM(config)


# --- Gemma-3 quirks ---------------------------------------------------------------------------


def _prepare_tokenizer(tok, cfg: ModelConfig):
    if cfg.chat_template == "gemma3" and not tok.chat_template:
        tok.chat_template = official_chat_template()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    token_rows(tok, cfg)  # a bad model.token_init fails here, before any weights load
    return tok


def stop_token_ids(tok) -> list[int]:
    """``<eos>`` and, when the vocabulary has it, ``<end_of_turn>``."""
    ids = [tok.eos_token_id]
    eot = tok.convert_tokens_to_ids(END_OF_TURN)
    if isinstance(eot, int) and eot != tok.unk_token_id and eot not in ids:
        ids.append(eot)
    return ids


def _prepare_generation(model, tok) -> None:
    gc = model.generation_config
    gc.eos_token_id = stop_token_ids(tok)
    gc.pad_token_id = tok.pad_token_id
    gc.bos_token_id = tok.bos_token_id


def generation_tokenizer(tok):
    """The tokenizer set to pad on the left, as batched decoder-only generation needs."""
    tok.padding_side = "left"
    return tok


def encode_chat(tok, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
    """Chat template -> ids with exactly one ``<bos>`` (the template writes it)."""
    text = tok.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages],
        tokenize=False, add_generation_prompt=add_generation_prompt,
    )
    return tok(text, add_special_tokens=False)["input_ids"]
