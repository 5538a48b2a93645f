"""Run moto's server with IAM's rule for condition keys missing from the request context.

moto treats a policy condition on a context key it does not supply (``aws:SecureTransport``,
``s3:TlsVersion``, ...) as satisfied, so a TLS-only bucket policy ("deny when
aws:SecureTransport is false") denies every object request. In IAM a condition on a key absent
from the request does not match (except the ``...IfExists`` and ``Null`` operators), so the
statement does not apply. This launcher restores that rule and otherwise runs the stock
``moto_server``.

Usage: python moto_server.py -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import sys


def _statement_applies(statement: dict, context: dict | None) -> bool:
    """False when a condition names a context key the request does not carry."""
    for operator, keys in (statement.get("Condition") or {}).items():
        if operator.endswith("IfExists") or operator == "Null":
            continue
        if any(not context or key not in context for key in keys):
            return False
    return True


def _patch_condition_semantics() -> None:
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    original = IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        if not _statement_applies(self._statement, incoming_condition_values):
            return PermissionResult.NEUTRAL
        return original(self, action, resource, principal, incoming_condition_values)

    IAMPolicyStatement.is_action_permitted = is_action_permitted


if __name__ == "__main__":
    _patch_condition_semantics()
    from moto.server import main

    main(sys.argv[1:])
