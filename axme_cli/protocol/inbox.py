"""Inbox threads and approvals on the wire (axme-reference.md §2.5; axp-spec api.inbox.*, api.approvals.*)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from axme_cli.protocol.models import Attachments, JsonInt, _Strict

# Thread status: pending (delivered, nobody looked yet), active (read, replied or delegated), done (approved or
# rejected: reply, delegate, approve and reject answer 409 after that).
PENDING, ACTIVE, DONE = "pending", "active", "done"
THREAD_STATUSES = (PENDING, ACTIVE, DONE)

# Timeline event types. `intent_completion_delivered` and `message.sent` are AXME's; the rest follow their style.
COMPLETION_DELIVERED = "intent_completion_delivered"
MESSAGE_SENT = "message.sent"
MESSAGE_DELETED = "message.deleted"
THREAD_READ = "thread.read"
THREAD_DELEGATED = "thread.delegated"
THREAD_APPROVED = "thread.approved"
THREAD_REJECTED = "thread.rejected"

# completion_delivery.completion.type
COMPLETION_TYPE = "intent_completion"
REPLY_TO_NOT_SET = "reply_to_not_set"

# Message roles: the completion comes from the intent's side ("agent"); replies come from an inbox owner.
ROLE_AGENT, ROLE_OWNER = "agent", "owner"

CHANGES_DEFAULT_LIMIT, CHANGES_MAX_LIMIT = 50, 200


class ReplyRequest(_Strict):
    """``api.inbox.reply.request.v1``."""

    message: Annotated[str, StringConstraints(min_length=1, max_length=5000)]
    attachments: Attachments | None = None  # finalized uploads; every owner holding the thread may then read them


class DelegateRequest(_Strict):
    """``api.inbox.delegate.request.v1`` (``delegate_to`` is optional in the schema; this runtime needs it)."""

    delegate_to: Annotated[str, StringConstraints(min_length=3, max_length=255)] | None = None
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class DecisionRequest(_Strict):
    """``api.inbox.decision.request.v1`` (approve and reject)."""

    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None


class MessagesDeleteRequest(_Strict):
    """``api.inbox.messages.delete.request.v1``: ``self`` hides messages for the caller's owner only, ``both``
    deletes the owner's own messages for every participant. Name them (``message_ids``) or take the newest
    ``limit``."""

    mode: Literal["self", "both"]
    message_ids: Annotated[list[Annotated[str, StringConstraints(min_length=1)]],
                           Field(min_length=1, max_length=100)] | None = None
    limit: Annotated[JsonInt, Field(ge=1, le=100)] | None = None


class ApprovalDecisionRequest(_Strict):
    """``api.approvals.decision.request.v1``."""

    decision: Literal["approve", "reject"]
    comment: Annotated[str, StringConstraints(max_length=1000)] | None = None

