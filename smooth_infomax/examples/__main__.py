"""``python -m smooth_infomax.examples DIR``: copy the shipped example utterances into DIR."""

import sys

from . import copy_examples

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m smooth_infomax.examples DIR")
    for path in copy_examples(sys.argv[1]):
        print(path)
