"""``python -m workhive.cli``: the same CLI without the console script on PATH."""

from workhive.cli import main

main()
