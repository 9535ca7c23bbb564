"""segport destination for Mailchimp: segments land as tags on the members of an audience."""

from .destination import MailchimpDestination

__all__ = ["MailchimpDestination"]
