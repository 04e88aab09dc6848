"""The command line every fixture-reference script shares: --fixtures (default tests/fixtures of this checkout)."""
import argparse
import pathlib

DEFAULT_FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures"


def parse_args(doc, add_arguments=None):
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default=str(DEFAULT_FIXTURES))
    if add_arguments:
        add_arguments(ap)
    return ap.parse_args()
