"""Validates CycloneDX JSON files against the official 1.5 schema (strict), with CycloneDX's own
cyclonedx-python-lib, which bundles the schemas. Exit 1 naming the first error of each bad file."""
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

bad = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(f.read())
    if error:
        bad += 1
        print(f"FAIL: {path} is not valid CycloneDX 1.5: {error}")
    else:
        print(f"ok: {path} is valid CycloneDX 1.5 (schema)")
sys.exit(1 if bad else 0)
