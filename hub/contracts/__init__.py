"""Data contracts: JSON Schema 2020-12 files under ``schemas/``, their Arrow schema, and vectorized
validation of Arrow record batches against them (see docs/contracts.md).

::

    contract = load_contract("civil_status/births.v1", settings.schemas_dir)
    verdict = Validator(contract).validate(batch)      # verdict.valid, verdict.invalid (quarantine)
"""

from __future__ import annotations

from hub.contracts.checks import CheckContext, CheckResult, available_checks, register_check
from hub.contracts.loader import load_contract
from hub.contracts.model import Contract, FieldInfo
from hub.contracts.validator import QUARANTINE_SCHEMA, BatchVerdict, Validator

__all__ = [
    "QUARANTINE_SCHEMA",
    "BatchVerdict",
    "CheckContext",
    "CheckResult",
    "Contract",
    "FieldInfo",
    "Validator",
    "available_checks",
    "load_contract",
    "register_check",
]
