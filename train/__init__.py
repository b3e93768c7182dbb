"""Build model + trainer from a config and run SFT / DPO (``python -m train``)."""
