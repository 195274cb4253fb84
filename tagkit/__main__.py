"""`python -m tagkit`: the `tagkit` command."""

from tagkit.cli import main

if __name__ == "__main__":
    main(prog_name="tagkit")
