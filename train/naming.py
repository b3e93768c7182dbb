"""``${overrides:KEY,...}`` in a run name (conf/config.yaml): the command-line overrides whose
value differs from the default, so that the jobs of ``python -m train -m seed=0,1 method.dpo.beta=0.1,0.5``
get different run directories and a re-run finds the same ones: ``dpo-tiny-lora-style-beta0.5-s1``.

Each override is written as its key and its value: the key's last part when no other key of the
config has that part (``max_steps``, ``beta``), else the whole key (``method.sft.epochs``); the
value right after a number-like key's end (``limit8``), or after ``_`` when it is a word
(``lr_scheduler_constant``); a value that is not a plain token (a list, a path) as a short hash.
No ``=`` or ``,``: a run directory is passed back to Hydra as ``run=DIR``, where those would need
quoting. Hydra's own ``hydra.job.override_dirname`` keeps overrides that repeat the default
(``method.dpo.beta=0.1``), path values with ``/`` and ``key=value,...``; hence this resolver.
"""

from __future__ import annotations

import hashlib
import re

from omegaconf import DictConfig, OmegaConf

# keys that may differ between a run and its resumption (train.rundir checks the rest)
RESUME_FREE = {"resume", "overwrite", "train.stop_at_step", "train.sigterm_grace_s", "train.report_to",
               "train.report_online", "model.allow_cpu"}
# keys that do not change what is trained
NOT_IN_NAME = RESUME_FREE | {"name", "out_dir"}
PLAIN = re.compile(r"^[\w.+-]{1,40}$")
NUMBER = re.compile(r"^-?[\d.]")


def overrides_part(*shown: str, _root_) -> str:
    """``-k=v,k=v`` for the overrides of the current Hydra job not among ``shown`` (the keys the
    name already spells out) and not in :data:`NOT_IN_NAME`; ``""`` outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    hc = HydraConfig.get()
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OverridesParser.create().parse_overrides(list(hc.overrides.task))
    groups = [o for o in overrides if _is_group(o, _root_)]
    defaults = None
    parts = []
    for o in sorted(overrides, key=lambda o: o.key_or_group):
        key = o.key_or_group
        if key in shown or key in NOT_IN_NAME or key.startswith("hydra"):
            continue
        if o not in groups:
            if defaults is None:
                defaults = _compose(hc.job.config_name, [g.input_line for g in groups])
            now, before = OmegaConf.select(_root_, key), OmegaConf.select(defaults, key)
            if _plain(now) == _plain(before) and not o.is_delete():
                continue
        label = _short(key, _root_)
        value = "deleted" if o.is_delete() else _token(o.get_value_element_as_str())
        parts.append(label + (value if NUMBER.match(value) else f"_{value}"))
    return "-" + "-".join(parts) if parts else ""


def _short(key: str, root) -> str:
    """The key's last part when no other key of the config has a part of that name."""
    last = key.rsplit(".", 1)[-1]
    seen: dict[str, int] = {}

    def walk(node) -> None:
        for k, v in node.items():
            seen[str(k)] = seen.get(str(k), 0) + 1
            if isinstance(v, dict):
                walk(v)

    walk(OmegaConf.to_container(root, resolve=False, throw_on_missing=False))
    return last if seen.get(last, 0) <= 1 else key


def _is_group(o, root) -> bool:
    """A config-group choice (``method=dpo``): the key holds a whole section, the value names a file."""
    return "." not in o.key_or_group and isinstance(OmegaConf.select(root, o.key_or_group), DictConfig) \
        and isinstance(o.value(), str)


def _compose(config_name: str, overrides: list[str]):
    from hydra import compose

    return compose(config_name=config_name, overrides=overrides)


def _plain(v):
    return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v


def _token(value: str) -> str:
    return value if PLAIN.match(value) else hashlib.sha256(value.encode()).hexdigest()[:8]


def register() -> None:
    if not OmegaConf.has_resolver("overrides"):
        OmegaConf.register_new_resolver("overrides", overrides_part)
