"""Validate an OpenAPI document from stdin (openapi-spec-validator: 3.0 / 3.1 by its
`openapi` field). Prints `valid` or the error and exits non-zero."""
import json
import sys

from openapi_spec_validator import validate

document = json.load(sys.stdin)
try:
    validate(document)
except Exception as err:  # noqa: BLE001 - report any validation failure
    sys.exit(f"invalid: {err}")
print("valid")
