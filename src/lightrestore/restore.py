"""``python -m lightrestore.restore ckpt=<path> input=<image|folder>`` (see ``lightrestore.cli.restore``)."""

from lightrestore.cli.restore import main

if __name__ == "__main__":
    main()
