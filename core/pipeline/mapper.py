"""Data matching: a profile's attributes -> the email identity and destination fields of a record."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Mapping

# Pragmatic syntax check (RFC 5321 sizes, one @, a dotted domain, no spaces or control characters).
# The platform remains the judge of deliverability; this only stops what can never be sent.
_NON_ASCII = "\u0080-\ud7ff\ue000-\uffff"  # letters beyond ASCII, never a (lone) surrogate: those cannot be sent


def _email_pattern(non_ascii: str) -> str:
    """Return the address syntax, with ``non_ascii`` (a class range, or '') as letters too."""
    atom = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~{non_ascii}-]+"
    label = f"A-Za-z0-9{non_ascii}"
    return (
        rf"^(?=.{{3,254}}$)(?=[^@]{{1,64}}@){atom}(?:\.{atom})*"
        rf"@(?:[{label}](?:[{label}-]{{0,61}}[{label}])?\.)+"
        rf"[A-Za-z{non_ascii}][{label}-]{{0,62}}$"
    )


# Nearly every address is ASCII, and for ASCII text the two patterns agree: the ASCII one compiles in
# a millisecond and matches with small character sets; the full one (40 ms to compile, at every
# start of the CLI) is compiled the first time an address beyond ASCII comes.
_ASCII_EMAIL = re.compile(_email_pattern(""))


@functools.cache
def _unicode_email() -> re.Pattern[str]:
    return re.compile(_email_pattern(_NON_ASCII))


def email_syntax_ok(email: str) -> bool:
    """Return whether ``email`` (normalised) has the syntax of an address that can be sent."""
    pattern = _ASCII_EMAIL if email.isascii() else _unicode_email()
    return pattern.match(email) is not None


def normalise_email(value: object) -> str:
    """Return the identity form of an email: trimmed and lower-cased ('' for missing values)."""
    if value is None:
        return ""
    return str(value).strip().lower()


def email_problem(email: str) -> str | None:
    """Why ``email`` (normalised) cannot be sent, or None when its syntax is acceptable."""
    if not email:
        return "email is empty"
    if not email_syntax_ok(email):
        return f"email {email!r} is not a valid address"
    return None


@dataclass(frozen=True, slots=True)
class Mapped:
    """A profile after data matching: identity, destination fields and the hash of both."""

    email: str
    fields: dict[str, object]
    digest: bytes


class Mapper:
    """Applies an export's data matching: ``email_field`` plus ``mapping`` (destination -> attribute)."""

    def __init__(self, email_field: str, mapping: Mapping[str, str]) -> None:
        self.email_field = email_field
        self.mapping = dict(sorted(mapping.items()))
        self._sources = _sources(self.mapping)
        basis = json.dumps([email_field, self.mapping], separators=(",", ":"), ensure_ascii=False).encode()
        # Stored with the sync state: a change of data matching makes every profile worth a look.
        self.fingerprint = int.from_bytes(hashlib.blake2b(basis, digest_size=8).digest(), "big", signed=True)

    def map(self, attrs: Mapping[str, object]) -> Mapped | str:
        """Return the mapped record, or the reason it must be rejected before sending."""
        email = normalise_email(attrs.get(self.email_field))
        problem = email_problem(email)
        if problem is not None:
            return problem
        fields = {dest: _value(attrs, src, parts) for dest, src, parts in self._sources}
        try:
            payload = _ENCODER.encode([email, fields])
        except ValueError:  # NaN or infinity, stored before loading refused them: JSON cannot carry them
            return self._non_finite(fields)
        # surrogatepass: a lone surrogate in a value (a JSON escape) must not crash the hash
        digest = hashlib.blake2b(payload.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        return Mapped(email, fields, digest)

    def _non_finite(self, fields: Mapping[str, object]) -> str:
        """Return the reject reason of a record whose fields hold a number JSON cannot carry."""
        for dest, src, _parts in self._sources:
            try:
                _ENCODER.encode(fields[dest])
            except ValueError:
                return (
                    f"attribute {src!r} (mapped to {dest}) is {fields[dest]!r}, not a finite number:"
                    " load the profile again with a number, null or a string"
                )
        return "a mapped attribute is not a finite number: load the profile again"


# One encoder for every record hash (json.dumps with options builds a new encoder per call).
# allow_nan=False: a non-finite number (which no platform's JSON can carry) makes the record a reject.
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str, allow_nan=False)


def _sources(mapping: Mapping[str, str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(destination field, source, the attributes an ``a+b`` source joins) of each mapped field, in order."""
    return [(dest, src, source_parts(src)) for dest, src in mapping.items()]


def source_parts(source: str) -> tuple[str, ...]:
    """Return the attributes an ``a+b`` source joins with a space (empty for a plain attribute name)."""
    return tuple(part.strip() for part in source.split("+")) if "+" in source else ()


def _value(attrs: Mapping[str, object], source: str, parts: tuple[str, ...]) -> object:
    """Return an attribute's value; ``a+b`` joins attributes a and b with a space (a full name)."""
    if not parts or source in attrs:
        return _clean(attrs.get(source))
    joined = (_clean(attrs.get(name)) for name in parts)
    return " ".join(str(p) for p in joined if p != "")


def _clean(value: object) -> object:
    """Strip strings; keep other JSON values; missing becomes ''."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return value
