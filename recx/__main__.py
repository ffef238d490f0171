"""`python -m recx <stage> ...` (the form torchrun uses)."""

from recx.cli import main

if __name__ == "__main__":
    main()
