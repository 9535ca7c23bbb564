"""Reads an export's people back from a Mailchimp audience for ``exports verify`` (read-only).

One ``GET .../members/{subscriber_hash}`` per person, ``fields`` keeping each answer small; a 404 is a
person the audience does not hold. See docs/providers/mailchimp.md#reading-members-back.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Collection, Mapping, Sequence

from segport import MemberState, UnknownAudienceError

from .api import MEMBER, MailchimpAPI, Problem, as_object, objects_in, subscriber_hash

# What one member read returns, and how many reads go out at once (the call governor still bounds
# them by the connection limit, docs/providers/mailchimp.md#connection-limit).
READ_FIELDS = "email_address,status,merge_fields,tags"
MEMBER_READS = 10
# Statuses whose people a repair run may write to (markers and fields; never a status).
WRITABLE_BY_REPAIR = frozenset({"subscribed", "pending", "transactional"})


class MemberReader:
    """Reads people of one audience as :class:`segport.MemberState`: status, mapped fields, segment tags."""

    def __init__(
        self,
        api: MailchimpAPI,
        audience: str,
        *,
        fields: Collection[str],
        segments: Collection[str],
        prefix: str,
        audience_gone: Callable[[], UnknownAudienceError],
    ) -> None:
        self.api, self.audience = api, audience
        self.fields, self.segments, self.prefix = fields, segments, prefix
        self.audience_gone = audience_gone

    def read(self, emails: Sequence[str]) -> Mapping[str, MemberState]:
        """Read each person with ``GET .../members/{subscriber_hash}`` (``fields`` keeps it small); 404: unknown.

        The audience is checked first (one small GET), so a missing audience is that error and not
        every person missing. Calls go out :data:`MEMBER_READS` at a time; the credential's call
        governor keeps all of them under the connection limit.
        See docs/providers/mailchimp.md#reading-members-back.
        """
        api = self.api
        try:
            api.call("GET", "/lists/{list_id}", params={"fields": "id"}, list_id=self.audience)
        except Problem as exc:
            if exc.status == 404:
                raise self.audience_gone() from None
            raise
        reads = [partial(self._read_member, email) for email in emails]
        found: dict[str, MemberState] = {}
        for email, future in zip(emails, api.gather(reads, parallel=MEMBER_READS), strict=True):
            state = future.result()
            if state is not None:
                found[email] = state
        return found

    def _read_member(self, email: str) -> MemberState | None:
        try:
            member_id = subscriber_hash(email)
            member = self.api.call(
                "GET", MEMBER, params={"fields": READ_FIELDS}, list_id=self.audience, subscriber_hash=member_id
            )
        except Problem as exc:
            if exc.status == 404:  # not in the audience (or deleted for good)
                return None
            raise
        member = as_object(member)
        status = str(member.get("status") or "").lower()
        merge = as_object(member.get("merge_fields"))
        by_tag = {str(tag).upper(): value for tag, value in merge.items()}
        fields = {name: by_tag[name.upper()] for name in self.fields if name.upper() in by_tag}
        names = {str(tag.get("name", "")).lower() for tag in objects_in(member.get("tags"))}
        markers = frozenset(s for s in self.segments if (self.prefix + s).lower() in names)
        return MemberState(status=status, subscribed=status in WRITABLE_BY_REPAIR, fields=fields, markers=markers)
