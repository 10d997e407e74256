"""``python -m camtool``."""

from camtool.cli import main

main()
