"""``python -m dcar_training``: see :mod:`dcar_training.cli`."""
from dcar_training.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
