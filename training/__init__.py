"""Reproduces the MTCNN weights from data with the paper's recipe (see training/README.md).

Run it with ``python -m training --config training/configs/wider.toml``."""
