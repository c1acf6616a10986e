"""`python -m vae_mnist.experiments.report [--base REF] [OTHER ...]`: compare OTHER (default: the workspace)
with REF (default: HEAD). A side is `workspace`, a git revision (HEAD, main, a commit), a DVC
experiment's name, or a registered version (3, v3, @champion, champion). Nothing is retrained:
DVC's cache and the MLflow store hold everything the report shows.

Exit 2, with one line, for a side that cannot be read (no such revision, experiment or version,
or no evaluation to compare)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vae_mnist.common.config import PARAMS_FILE, load_config, project_root
from vae_mnist.common.errors import reports_errors
from vae_mnist.experiments.report.compare import OUT, build, write_report
from vae_mnist.experiments.report.sides import WORKSPACE, resolve


@reports_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m vae_mnist.experiments.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("others", nargs="*", default=[WORKSPACE], metavar="OTHER")
    parser.add_argument("--base", default="HEAD", help="the baseline (default: HEAD)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the folder (default: {OUT})")
    args = parser.parse_args(argv)
    root = project_root()
    model_name = load_config(root / PARAMS_FILE).mlflow.registered_model_name
    base = resolve(args.base, root, model_name)
    others = [resolve(ref, root, model_name) for ref in args.others]
    sides = [base, *others]
    doc = build(base, others, root)
    page = write_report(doc, sides, root / args.out)
    print("\n".join(doc.summary))
    print(page)


if __name__ == "__main__":
    main()
