#!/bin/bash
# The OpenAPI document (part of make test): tests/openapi/check.py validates web/openapi.json
# against the OpenAPI 3.1 schema and JSON Schema 2020-12, and every docs example's reply
# against it. (tests/unit/test_openapi.c checks it against the code's tables.) Needs
# Debian's python3-jsonschema. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")"
export RELUD=${RELUD:-$(cd ../.. && pwd)/build/relud}
exec /usr/bin/python3 check.py
