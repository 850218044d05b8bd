"""The application layer: recipes, building an experiment from one, running it into a run
directory, and what is done to run directories afterwards (diagnosis, evaluation, landscapes,
connecting curves, loading a run back).

The library packages (`data`, `nn`, `init`, `optim`, `schedules`, `train`, `diagnose`,
`landscape`, `report`) take models, tensors and plain options and never import this package;
`cli` and `study` sit on top of it (`tests/test_layering.py` holds that).
"""
