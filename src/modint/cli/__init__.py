"""The `modint` command line: argument parsing and printing only; the work is in the library.

One module per command group (diagnosis, training, reports, data, interop); this one builds the
app from their functions, in the order ``modint --help`` lists them.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from modint.cli import data, diagnosis, interop, reports, training
from modint.cli.common import DEFAULT_MODEL

__all__ = ["DEFAULT_MODEL", "app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Diagnose and mitigate modality interference in multimodal LLMs.")
data_app = typer.Typer(no_args_is_help=True, help="Benchmarks: list them, preview perturbed samples.")
zoo_app = typer.Typer(no_args_is_help=True, help="Models modint can build: tiny random models of each family.")
app.add_typer(data_app, name="data")
app.add_typer(zoo_app, name="zoo")

app.command()(diagnosis.diagnose)
app.command()(diagnosis.attack)
app.command()(training.train)
app.command()(training.ablate)
app.command()(data.models)
app.command()(reports.report)
app.command()(reports.compare)
app.command()(interop.score)
app.command()(interop.export)
data_app.command("list")(data.data_list)
data_app.command("conditions")(data.data_conditions)
data_app.command("preview")(data.data_preview)
data_app.command("inspect")(data.data_inspect)
data_app.command("convert")(data.data_convert)
zoo_app.command("tiny")(data.zoo_tiny)
zoo_app.command("train-demo")(data.zoo_train_demo)


def main() -> None:
    import errno

    from modint.diagnose.rundir import RunDirBusy

    logging.basicConfig(level=os.environ.get("MODINT_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except RunDirBusy as exc:
        print(f"modint: failed: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:  # a full disk or a read-only --out: one line; what was written stays valid
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        where = f"cannot write {exc.filename}: " if exc.filename else ""
        print(f"modint: failed: {where}{exc.strerror or exc} (what was written is kept; re-run the same "
              f"command to resume)", file=sys.stderr)
        sys.exit(1)
