"""sftdpo's Hydra plugin: a sweeper that says how every job of ``python -m train -m`` ended.
Hydra instantiates plugins only from the ``hydra_plugins`` namespace package, hence this folder."""
