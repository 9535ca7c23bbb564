"""segport destination for any HTTP JSON receiver that speaks the segport webhook protocol v1."""

from .destination import WebhookDestination

__all__ = ["WebhookDestination"]
