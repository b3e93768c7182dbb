"""The recipes: SFT, DPO (and its family: IPO, DPO+NLL, ...), KTO, and SFT→DPO, each handed to TRL.

    check config → lock + open runs/<name> → load + validate data → load model
    → for each stage: TRL config from ours → TRL trainer → train (or resume) → save

A method is the stages its config fills in (``method.sft``, ``method.dpo``, ``method.kto``);
loss variants are TRL's ``loss_type`` values, so a new preset is a YAML file in conf/method/.
The only things written by hand are what TRL has no notion of: per-message ``weight`` (see
``sft_data``), the run-directory contract (``rundir``), the stage hand-over of SFT→DPO and the
record of which reference a preference stage used (``lineage``).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import time

from . import lineage, tracking
from .config import PREFERENCE_STAGES, Config
from .preempt import Preemption, agree
from .rundir import (
    Interrupted,
    RunDir,
    RunWriteError,
    TrainingDiverged,
    environment,
    last_complete_checkpoint,
    metrics_callback,
    read_jsonl,
    steady_step_seconds,
    step_control,
)

log = logging.getLogger("sftdpo")


def run(cfg: Config) -> int:
    from accelerate import PartialState

    device = cfg.resolved_device()
    # Joins the process group when launched by accelerate/torchrun (gloo on CPU, nccl on CUDA).
    state = PartialState(cpu=device == "cpu")
    run = RunDir(cfg, state.is_main_process)
    with run.locked():  # one writer per run directory, for the whole run (taken by the main process)
        return _run(cfg, run, state, device)


def _run(cfg: Config, run: RunDir, state, device: str) -> int:
    from . import trim
    from .dataprep import describe_test, prepare
    from .models import load_tokenizer

    run.check()
    # Data and model location are checked before the run directory exists, so a typo in a
    # path does not leave a half-made run behind that blocks the corrected command.
    stages = cfg.method.stages
    data = {task: prepare(cfg, task) for task in stages}
    tok = load_tokenizer(cfg.model)
    trim.install()  # compact scoring of TRL's fused LM head on CPU (exact; see train/trim.py)
    keep = trim.vocabulary(tok, trim.data_files(cfg.data), cfg.data.columns) if cfg.model.trim_vocab else None
    # the SIGTERM handler is in place on every rank before status.json first exists
    with Preemption(cfg.train.sigterm_grace_s, lambda: _out_of_grace(cfg, run)) as preemption:
        state.wait_for_everyone()  # every rank has checked before rank 0 creates anything
        try:
            run.open()
            # CUDA_VISIBLE_DEVICES: which GPU a parallel sweep job got (hydra/launcher=joblib)
            run.status.update(world_size=state.num_processes, device=device, environment=environment(),
                              cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
            run.write_json("data.json", {
                "stages": {task: {k: v for k, v in d[2].items() if k != "rejected"} for task, d in data.items()},
                "test_files": describe_test(cfg, stages[-1]),
            })
            run.write_jsonl("rejected.jsonl", [r for d in data.values() for r in d[2]["rejected"]])
            if keep is not None:
                run.write_vocab(keep, len(tok), trim.data_files(cfg.data))
            log.info("run %s: %s on %s, %d process(es)", run.path, cfg.method.name, device, state.num_processes)
            return _train(cfg, run, tok, {task: d[:2] for task, d in data.items()}, device, keep, preemption)
        except (Exception, KeyboardInterrupt) as e:
            run.finish(*_ending(e))
            raise
        finally:
            run.close()


def _ending(e: BaseException) -> tuple[str, str]:
    """(state, reason) for status.json when the run ends by an exception."""
    if isinstance(e, TrainingDiverged):
        return "diverged", str(e)
    if isinstance(e, Interrupted):
        return "interrupted", str(e)
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", "Ctrl-C; resume=true continues from the last complete checkpoint"
    if isinstance(e, RunWriteError):
        return "failed", str(e)
    first = (str(e).strip().splitlines() or [""])[0]
    return "failed", f"{type(e).__name__}: {first}"


def _out_of_grace(cfg: Config, run: RunDir) -> None:
    """SIGTERM's grace period ran out before a checkpoint was saved (see train.preempt)."""
    why = (f"SIGTERM: no checkpoint within train.sigterm_grace_s={cfg.train.sigterm_grace_s:g} s; "
           "resume=true continues from the last complete checkpoint")
    run.finish("interrupted", why)
    print(f"interrupted: {why}", file=sys.stderr, flush=True)


def _train(cfg: Config, run: RunDir, tok, data: dict, device: str, keep: list[int] | None, preemption) -> int:
    from transformers import set_seed

    stages = cfg.method.stages
    set_seed(cfg.seed)
    model = None
    for i, stage in enumerate(stages):
        final = i == len(stages) - 1
        if run.stage_done(stage):
            log.info("%s: already done in %s, skipping", stage, run.output(stage, final))
            model = None  # the next stage loads it from disk
            continue
        previous = run.output(stages[i - 1], False) if i else None
        if model is None:
            model = build_model(cfg, device, tok, previous, keep)
        if stage in PREFERENCE_STAGES:  # the model it starts from is its reference: say exactly which
            run.status["stages"][stage] = {"done": False, "reference": lineage.reference(cfg, previous)}
            run.save_status()
        model, finished = train_stage(cfg, run, stage, tok, model, *data[stage], final=final, preemption=preemption)
        if not final and agree(preemption.requested):
            raise Interrupted(f"SIGTERM after the {stage} stage (saved in {run.output(stage, final)}); "
                              "continue with resume=true")
        if not finished:
            run.status["state"] = "stopped"
            run.save_status()
            log.info("stopped at step %s as asked (train.stop_at_step); continue with resume=true",
                     cfg.train.stop_at_step)
            return 0
    run.status["state"] = "done"
    run.save_status()
    log.info("done: %s", run.path)
    return 0


def build_model(cfg: Config, device: str, tok, previous=None, keep: list[int] | None = None):
    """The model a stage starts from: the configured base, or a previous stage's saved result."""
    from .models import load_model, qlora_quantization, training_dtype
    from .trim import restrict

    kwargs = qlora_quantization() if cfg.peft.name == "qlora" else {}
    dtype = training_dtype(cfg.model, cfg.peft.name, device)
    if previous is not None and cfg.peft.name == "none":
        # full fine-tuning: the SFT stage saved whole weights
        _, model = load_model(cfg.model.weights_at(previous), None, tok, dtype, **kwargs)
        return model
    _, model = load_model(cfg.model, None, tok, dtype, **kwargs)
    if cfg.train.packing and "sft" in cfg.method.stages:
        model.set_attn_implementation(packed_attention(device))
    if keep is not None:
        restrict(model, keep)  # model.trim_vocab (LoRA only: the config check says so)
    if previous is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(previous), is_trainable=True)
    return model


def lora_config(cfg: Config):
    from peft import LoraConfig

    p = cfg.peft
    targets = p.target_modules if isinstance(p.target_modules, str) else list(p.target_modules)
    return LoraConfig(r=p.r, lora_alpha=p.alpha, lora_dropout=p.dropout, target_modules=targets, task_type="CAUSAL_LM")


def trainer_args(cfg: Config, run: RunDir, stage: str, has_val: bool) -> dict:
    """Our config → the TrainingArguments fields both TRL configs share."""

    t, st = cfg.train, getattr(cfg.method, stage)
    evaluate = has_val and t.eval_steps > 0
    device = cfg.resolved_device()
    return dict(
        **tracking.trainer_fields(cfg, stage),  # train.report_to (where they write: tracking.environment)
        output_dir=run.checkpoints(stage),
        num_train_epochs=st.epochs if st.epochs is not None else t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=st.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        max_length=t.max_length,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # the default filter logs a NaN loss as 0.0 and hides divergence
        eval_strategy="steps" if evaluate else "no",
        eval_steps=t.eval_steps if evaluate else None,
        save_strategy="steps",
        save_steps=t.eval_steps if t.early_stopping_patience else t.save_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=t.early_stopping_patience is not None,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        **checkpointing(t.gradient_checkpointing),
        **sampling(t.group_by_length),
        seed=cfg.seed,
        ddp_find_unused_parameters=False,  # every LoRA / full weight takes part in each step
        use_cpu=device == "cpu",
        # bf16 autocast on CUDA; with peft=none it computes on float32 master weights (models.training_dtype)
        bf16=device == "cuda" and cfg.model.dtype in ("auto", "bfloat16"),
    )


def checkpointing(on: bool) -> dict:
    """The TrainingArguments field for activation checkpointing. transformers renamed
    ``gradient_checkpointing`` to ``activation_checkpointing`` (the old name stays a deprecated
    alias); 5.17, the GPU machine's version and our lowest, knows only the old name."""
    import dataclasses

    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing": on}


def sampling(group_by_length: bool) -> dict:
    """The TrainingArguments field for batches of similar lengths (less padding to compute):
    ``train_sampling_strategy="group_by_length"`` in recent transformers, a boolean before."""
    import dataclasses

    from transformers import TrainingArguments

    if not group_by_length:
        return {}  # each trainer's own default (KTO's is sequential, which its KL estimate needs)
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in fields:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def packed_attention(device: str) -> str:
    """An attention kernel that keeps packed sequences apart without a dense mask over the whole
    pack: flash-attention's varlen kernel where it is installed, else flex attention (a block mask
    from the position ids). On CPU, sdpa: transformers builds the same block-causal mask densely,
    which is exact, and flex would first compile its kernel."""
    import importlib.util

    if device != "cuda":
        return "sdpa"
    return "flash_attention_2" if importlib.util.find_spec("flash_attn") else "flex_attention"


def sft_trainer(cfg: Config, run: RunDir, tok, model, train, val, callbacks):
    from trl import SFTConfig, SFTTrainer

    from .sft_data import tokenize_text, tokenize_weighted, training_template

    # Pre-tokenized with assistant masks so weight-0 turns are masked too; SFTTrainer
    # takes input_ids + assistant_masks as they are and trains on the mask.
    template = training_template(tok)
    n = cfg.train.max_length

    def one(r):
        if r.get("text") is not None:  # language modeling: every token is a target
            return tokenize_text(tok, r["text"], n)
        return tokenize_weighted(tok, r["messages"], template, n)

    def tokenize(ds):
        if ds is None:
            return None
        return ds.map(one, remove_columns=ds.column_names, desc="tokenize")

    # packing (best-fit, padding-free) packs the labels TRL builds from our masks, so weight-0 and
    # prompt tokens stay untrained; the model's attention kernel keeps the sequences apart (build_model)
    args = SFTConfig(**trainer_args(cfg, run, "sft", val is not None), packing=cfg.train.packing)
    return SFTTrainer(model=model, args=args, train_dataset=tokenize(train), eval_dataset=tokenize(val),
                      processing_class=tok, peft_config=_new_adapter(cfg, model), callbacks=callbacks)


def dpo_trainer(cfg: Config, run: RunDir, tok, model, train, val, callbacks):
    from trl import DPOConfig, DPOTrainer

    st = cfg.method.dpo
    args = DPOConfig(**trainer_args(cfg, run, "dpo", val is not None), beta=st.beta, loss_type=list(st.loss_type),
                     loss_weights=list(st.loss_weights) if st.loss_weights is not None else None,
                     precompute_ref_log_probs=st.precompute_ref_log_probs)
    cols = ["prompt", "chosen", "rejected"]
    return DPOTrainer(model=model, ref_model=_frozen_reference(cfg, model, st), args=args,
                      train_dataset=train.select_columns(cols),
                      eval_dataset=val.select_columns(cols) if val is not None else None,
                      processing_class=tok, peft_config=_new_adapter(cfg, model), callbacks=callbacks)


def kto_trainer(cfg: Config, run: RunDir, tok, model, train, val, callbacks):
    from trl import KTOConfig, KTOTrainer

    st = cfg.method.kto
    args = KTOConfig(**trainer_args(cfg, run, "kto", val is not None), beta=st.beta, loss_type=st.loss_type,
                     desirable_weight=st.desirable_weight, undesirable_weight=st.undesirable_weight,
                     precompute_ref_log_probs=st.precompute_ref_log_probs)
    cols = ["prompt", "completion", "label"]
    # TRL reads KTO rows in order and estimates the KL term by pairing each completion with another
    # row's prompt in the same batch; the loader puts a pair's two rows side by side, so shuffle.
    train = train.shuffle(seed=cfg.seed).select_columns(cols)
    return KTOTrainer(model=model, ref_model=_frozen_reference(cfg, model, st), args=args, train_dataset=train,
                      eval_dataset=val.select_columns(cols) if val is not None else None,
                      processing_class=tok, peft_config=_new_adapter(cfg, model), callbacks=callbacks)


def _frozen_reference(cfg: Config, model, stage):
    """The reference model a preference trainer gets, or None to let TRL disable the adapter.

    With LoRA, TRL disables the adapter for the reference; a model that already carries the SFT
    adapter gets a frozen copy of it as "ref" (the SFT policy is the reference). In full
    fine-tuning TRL would reload the reference from model.config's hub id, which is the base model
    even after our SFT stage; a frozen copy of the starting policy is the right one."""
    if cfg.peft.name == "none" and not stage.precompute_ref_log_probs:
        return copy.deepcopy(model).eval().requires_grad_(False)
    return None


def _new_adapter(cfg: Config, model):
    """A LoRA config for a model that has no adapter yet; None to train the one it has (or full weights)."""
    from peft import PeftModel

    return None if cfg.peft.name == "none" or isinstance(model, PeftModel) else lora_config(cfg)


TRAINERS = {"sft": sft_trainer, "dpo": dpo_trainer, "kto": kto_trainer}


def train_stage(cfg: Config, run: RunDir, stage: str, tok, model, train, val, final: bool, preemption):
    """Train one stage; returns (trained model, finished?). Raises :class:`Interrupted` when SIGTERM
    stopped it (after saving a checkpoint) and RunWriteError when the run directory could not take a write."""
    from transformers import EarlyStoppingCallback

    metrics = metrics_callback(run, stage)
    callbacks = [metrics]
    if cfg.train.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(cfg.train.early_stopping_patience))
    control = step_control(run, cfg.train.stop_at_step, preemption)
    callbacks.append(control)  # last: it sees what the others decided about saving
    resume_from, start_step = None, 0
    if run.resuming:
        resume_from = last_complete_checkpoint(run.checkpoints(stage))
        start_step = int(resume_from.rsplit("-", 1)[-1]) if resume_from else 0
        run.drop_metrics_after(stage, start_step)  # the steps after it are logged again
        if resume_from:
            log.info("%s: resuming from %s", stage, resume_from)
    with tracking.environment(cfg, run, stage):  # read when the trainer is built and when training starts
        trainer = TRAINERS[stage](cfg, run, tok, model, train, val, callbacks)
        if resume_from:
            _restore_trained_adapter(trainer.model, resume_from)
        started = time.perf_counter()
        try:
            with run.writing(lambda: control.saving):
                result = trainer.train(resume_from_checkpoint=resume_from)
        except (Exception, KeyboardInterrupt) as e:
            _close_progress_bar(trainer)
            if isinstance(e, RunWriteError):
                run.discard(control.saving)
            raise
    seconds = time.perf_counter() - started
    state = trainer.state
    finished = control.stopped_by is None or state.global_step >= state.max_steps
    if stage in PREFERENCE_STAGES and run.is_main:
        _check_step0(cfg, run, stage)
    if finished:
        out = run.output(stage, final)
        if "ref" in getattr(trainer.model, "peft_config", {}):
            # TRL's frozen copy of the SFT adapter (the DPO reference): not part of the result
            trainer.model.delete_adapter("ref")
        with run.writing(out):
            trainer.save_model(str(out))  # adapter or full weights, + tokenizer and chat template
        world = trainer.args.world_size
        run.status["stages"].setdefault(stage, {}).update({
            "done": True, "steps": state.global_step, "epochs": state.epoch,
            "train_loss": result.training_loss, "seconds": round(seconds, 2),
            "seconds_per_step": round(seconds / max(1, state.global_step - start_step), 3),
            # steady state: the median optimizer step after the first (no set-up, no logging)
            "step_seconds_median": steady_step_seconds(metrics.step_seconds),
            "effective_batch": cfg.train.batch_size * cfg.train.grad_accum * world,
            "world_size": world, "output": str(out),
        })
        run.save_status()
    _report_rank(trainer, stage)
    if control.stopped_by == "SIGTERM" and not finished:
        raise Interrupted(f"SIGTERM at {stage} step {state.global_step}; checkpoint saved in {control.saved}; "
                          "continue with resume=true")
    return trainer.model, finished


def _restore_trained_adapter(model, checkpoint: str) -> None:
    """A checkpoint of SFT->DPO's DPO stage holds two adapters: the trained policy ("default", at
    the top) and TRL's frozen copy of the SFT adapter ("ref", in a sub-folder). transformers 5.17,
    our lowest version, resumes only the sub-folder ones, so the policy would restart from the SFT
    adapter; later versions load both. Loading the policy here does it for either."""
    from peft import PeftModel

    if isinstance(model, PeftModel) and len(model.peft_config) > 1 and any(
            os.path.isfile(os.path.join(checkpoint, f)) for f in ("adapter_model.safetensors", "adapter_model.bin")):
        model.load_adapter(checkpoint, "default", is_trainable=True)
        model.set_adapter("default")


def _check_step0(cfg: Config, run: RunDir, stage: str) -> None:
    """status.json: the first logged step against what the loss predicts (train/lineage.py)."""
    check = lineage.step0(cfg, stage, read_jsonl(run.path / "metrics.jsonl"))
    if check is not None:
        run.status["stages"].setdefault(stage, {})["step0"] = check
        run.save_status()
        if not check["ok"]:
            log.warning("%s: %s", cfg.name, lineage.warning(stage, check))


def _close_progress_bar(trainer) -> None:
    """An exception out of trainer.train() leaves transformers' progress bar open, and the one-line
    message would be printed at the end of the bar's line; close it first."""
    from transformers.trainer_callback import ProgressCallback

    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, ProgressCallback) and cb.training_bar is not None:
            cb.training_bar.close()
            cb.training_bar = None


def _report_rank(trainer, stage: str) -> None:
    """Every rank prints its last loss and a digest of its trainable weights: under DDP they
    must agree (a mismatch means the ranks diverged). stdout only, not the run directory."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, p in sorted(trainer.model.named_parameters()):
        if p.requires_grad:
            digest.update(name.encode())
            digest.update(p.detach().to(torch.float32).cpu().numpy().tobytes())
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    print(f"rank {trainer.args.process_index}/{trainer.args.world_size} {stage}: steps={trainer.state.global_step} "
          f"last_loss={losses[-1] if losses else None} weights={digest.hexdigest()[:16]}", flush=True)
