"""``python -m lightrestore [hydra overrides]``: train + test (see ``lightrestore.cli.train``)."""

from lightrestore.cli.train import main

if __name__ == "__main__":
    main()
