"""Actions: one module per action, each idempotent and keyed by the request's key.

    execute(api, ActionRequest) -> ActionResult   raises ActionError

`api` is a kubernetes.client.ApiClient, so a caller can pass one that
impersonates the Runbook's ServiceAccount: the apiserver then answers 403
itself, and the ActionError carries its status and text.
"""

from remediator.actions.base import ActionError, ActionRequest, ActionResult, Conflict, execute

__all__ = ["ActionError", "ActionRequest", "ActionResult", "Conflict", "execute"]
