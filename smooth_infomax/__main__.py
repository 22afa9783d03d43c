"""``python -m smooth_infomax`` is ``sim-extract``."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="sim-extract")
