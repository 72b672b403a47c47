"""`accord openslo validate FILE…`: the api's OpenSLO import checks, offline (no database, no api).

For each file: the YAML is read as the api reads it (lists, multi-document streams, single
documents), checked against the OpenSLO v1 spec's rules (services/api/openslo_rules.py), and
imported as POST /v1/openslo would (services/api/openslo.py, then the agreement's field and
cross-field rules), without creating anything. Exit status 0 when every file would import, 1 when
one would not (its problems printed, one per line), 2 when a file cannot be read.
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


def problems_of(text: str, customer: str | None = None, provider: str | None = None) -> tuple[list[str], list[str]]:
    """The problems an import of `text` would have (`field: reason`), and its notes."""
    try:
        docs = parse_yaml(text)
    except Invalid as exc:
        return [f"{e['field']}: {e['reason']}" for e in exc.extra.get("errors", [])], []
    try:
        translated, _ = translate(docs)  # Sloth and Pyrra files as the OpenSLO v1 documents they import as
    except Invalid as exc:
        return [f"{e['field']}: {e['reason']}" for e in exc.extra.get("errors", [])], []
    found = [f"{p['field']}: {p['reason']} (OpenSLO v1 rule)" for p in check(translated)]
    try:
        imported = import_any(docs, customer=customer or "(customer)", provider=provider or "(provider)")
    except Invalid as exc:
        return found + [f"{e['field']}: {e['reason']}" for e in exc.extra.get("errors", [])], []
    try:
        body = AgreementIn.model_validate(imported.document)
    except ValidationError as exc:
        return found + [f"{e['field']}: {e['reason']}" for e in validation_errors(exc.errors())], []
    document = new_document(body)  # the agreement's cross-field rules, as the api checks them
    found += [f"{p['field']}: {p['reason']}" for p in contract.document_problems(document, imported.indicators)]
    return found, imported.notes


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
        found, notes = problems_of(text, args.customer, args.provider)
        if found:
            status = 1
            print(f"{path}: would be refused")
            for line in found:
                print(f"  {line}")
        else:
            print(f"{path}: ok")
            for note in notes:
                print(f"  note: {note}")
    return status
