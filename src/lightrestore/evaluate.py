"""``python -m lightrestore.evaluate ckpt=<path> [task=<task>]`` (see ``lightrestore.cli.evaluate``)."""

from lightrestore.cli.evaluate import main

if __name__ == "__main__":
    main()
