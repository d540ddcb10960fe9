"""Training recipes of DC-AR: the DC-HT tokenizer (Table 5) and the DC-AR generator (Table 6, Fig. 10).

Why a top-level package and not ``harness.training``: training builds and updates the DC-HT / DC-AR modules,
which live in ``baselines/``, and ``harness`` may reach ``baselines`` only through the registry
(docs/architecture.md). ``dcar_training`` sits beside ``suites``: it may import ``harness`` and ``baselines``; the
training suites (``suites/tokenizer_ablation.py``, ``suites/train_efficiency.py``) import it. See docs/training.md.
Why not plain ``training``: Show-o's official code has a top-level ``training`` package that its inference imports
(``training.prompting_utils``), so a checkout adapter and this package could not live in one process.
"""
