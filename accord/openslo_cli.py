"""`accord openslo validate FILE…`: the api's OpenSLO import checks, offline (no database, no api).

For each file: the YAML is read as the api reads it (lists, multi-document streams, single
documents), checked against the OpenSLO v1 spec's rules (services/api/openslo_rules.py), and
imported as POST /v1/openslo would (services/api/openslo.py, then the agreement's field and
cross-field rules), without creating anything. Exit status 0 when every file would import and
follows the v1 rules, 1 when one would not import or breaks a rule (the api imports such a file
all the same; each problem printed, one per line), 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from services.api.agreement_changes import new_document
from services.api.openslo import parse_yaml
from services.api.openslo_foreign import import_any, translate
from services.api.openslo_rules import check
from services.api.schemas import AgreementIn
from shared import contract
from shared.errors import Invalid
from shared.http import validation_errors


def add_parser(sub: Any) -> None:
    openslo = sub.add_parser("openslo", help="OpenSLO files")
    openslo_sub = openslo.add_subparsers(dest="openslo_command", required=True)
    validate = openslo_sub.add_parser("validate", help="check OpenSLO files as the api's import would, offline")
    validate.add_argument("files", nargs="+", metavar="FILE", help="YAML files ('-' reads standard input)")
    validate.add_argument("--customer", help="as ?customer= (default: the Service's, else a placeholder)")
    validate.add_argument("--provider", help="as ?provider= (default: the Service's, else a placeholder)")


def problems_of(
    text: str, customer: str | None = None, provider: str | None = None
) -> tuple[list[str], list[str], list[str]]:
    """What an import of `text` would refuse (`field: reason`), the OpenSLO v1 rules it breaks
    (the api imports such files all the same), and the import's notes."""
    try:
        docs = parse_yaml(text)
        translated, _ = translate(docs)  # Sloth and Pyrra files as the OpenSLO v1 documents they import as
    except Invalid as exc:
        return [f"{e['field']}: {e['reason']}" for e in exc.extra.get("errors", [])], [], []
    rules = [f"{p['field']}: {p['reason']}" for p in check(translated)]
    try:
        imported = import_any(docs, customer=customer or "(customer)", provider=provider or "(provider)")
    except Invalid as exc:
        return [f"{e['field']}: {e['reason']}" for e in exc.extra.get("errors", [])], rules, []
    try:
        body = AgreementIn.model_validate(imported.document)
    except ValidationError as exc:
        return [f"{e['field']}: {e['reason']}" for e in validation_errors(exc.errors())], rules, []
    document = new_document(body)  # the agreement's cross-field rules, as the api checks them
    refused = [f"{p['field']}: {p['reason']}" for p in contract.document_problems(document, imported.indicators)]
    return refused, rules, imported.notes


def run(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{path}: cannot be read: {exc}", file=sys.stderr)
            return 2
        refused, rules, notes = problems_of(text, args.customer, args.provider)
        if refused:
            print(f"{path}: would be refused")
        elif rules:
            print(f"{path}: would import, but breaks OpenSLO v1 rules")
        else:
            print(f"{path}: ok")
        for line in refused:
            print(f"  {line}")
        for line in rules:
            print(f"  {line} (OpenSLO v1 rule)")
        for note in notes:
            print(f"  note: {note}")
        if refused or rules:
            status = 1
    return status
